//! Persian text rules (GLOSSARY.md): what is compared and indexed is the normalised form; what the
//! user sent is kept for display.

/// Normalises for comparison and search: Arabic yeh (ي, ى) → Persian yeh (ی), Arabic kaf (ك) →
/// Persian kaf (ک), Persian and Arabic-Indic digits → ASCII, Latin letters lower-cased, runs of
/// whitespace → one space, surrounding whitespace trimmed. The zero-width non-joiner is kept.
pub fn normalise(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(normalise_char(c));
    }
    out
}

/// The NUL character (U+0000) is in no text anyone means to keep, and PostgreSQL cannot store
/// it: a value holding one is refused (`nul_character`), the same on either database.
pub fn refuse_nul(field: &str, value: &str) -> Result<(), crate::FieldError> {
    if value.contains('\0') {
        return Err(nul_character(field));
    }
    Ok(())
}

/// The refusal of a value that holds the NUL character.
pub fn nul_character(field: &str) -> crate::FieldError {
    crate::FieldError::new(
        field,
        "nul_character",
        "the text holds the NUL character (U+0000), which no text may hold",
    )
}

fn normalise_char(c: char) -> char {
    match c {
        'ي' | 'ى' => 'ی',
        'ك' => 'ک',
        '۰'..='۹' => digit(c as u32 - '۰' as u32),
        '٠'..='٩' => digit(c as u32 - '٠' as u32),
        c if c.is_ascii_uppercase() => c.to_ascii_lowercase(),
        c => c,
    }
}

fn digit(value: u32) -> char {
    char::from_digit(value, 10).unwrap_or('0')
}

/// Only the digits, as ASCII, of a number typed with any digits and separators (spaces, hyphens).
/// `None` when anything else is in it.
pub fn ascii_digits(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    for c in input.trim().chars() {
        match normalise_char(c) {
            d @ '0'..='9' => out.push(d),
            ' ' | '-' | '\u{200c}' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// A number of digits alone (any script), as ASCII: `None` when anything else is in it, a space or
/// a hyphen too, so that `1-2` is not read as 12 where a quantity is meant.
pub fn only_digits(input: &str) -> Option<String> {
    input
        .chars()
        .map(|c| Some(normalise_char(c)).filter(char::is_ascii_digit))
        .collect::<Option<String>>()
        .filter(|digits| !digits.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_letters_become_persian() {
        assert_eq!(normalise("علي"), "علی");
        assert_eq!(normalise("كريمي"), "کریمی");
        assert_eq!(normalise("موسى"), normalise("موسی"));
    }

    #[test]
    fn digits_become_ascii_and_space_is_tidied() {
        assert_eq!(normalise("  منطقه ۱۲   ٣ "), "منطقه 12 3");
        assert_eq!(normalise("Zahra  AHMADI"), "zahra ahmadi");
    }

    #[test]
    fn zero_width_non_joiner_is_kept() {
        assert_eq!(normalise("می\u{200c}خواهم"), "می\u{200c}خواهم");
    }

    #[test]
    fn digits_only_accepts_separators_and_any_digit_script() {
        assert_eq!(
            ascii_digits("۰۹۱۲-۳۴۵ ۶۷۸۹").as_deref(),
            Some("09123456789")
        );
        assert_eq!(ascii_digits("12a4"), None);
    }
}
