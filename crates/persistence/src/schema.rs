// One schema for both backends; see migrations/{postgres,sqlite}. Written by hand, because the two
// backends would print different types for the same column.

diesel::table! {
    areas (id) {
        id -> Text,
        parent_id -> Nullable<Text>,
        level -> Text,
        code -> Text,
        name_fa -> Text,
        name_en -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}
