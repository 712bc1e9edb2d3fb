//! `tavana demo-data`: a realistic, deterministic demo of Mashhad's margins for front-end
//! developers (and the data set of the registry benchmark): areas, facilitation offices,
//! households with Persian names, persons with valid national IDs, consents, assessments and
//! enrolments in "Women heads of household 1398" in several states.

use chrono::{Days, NaiveDate};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::text::normalise;

use crate::areas::AreaRow;
use crate::assessments::AssessmentRow;
use crate::audit::{self, AuditContext, Event};
use crate::consents::ConsentRow;
use crate::db::DbConnection;
use crate::enrolments::{EnrolmentRow, TransitionRow};
use crate::error::StoreError;
use crate::households::HouseholdRow;
use crate::organisations::OrganisationRow;
use crate::persons::PersonRow;
use crate::schema::{
    areas, assessments, consents, enrolment_stages, enrolment_transitions, enrolments,
    household_memberships, households, organisations, persons, progress_counts,
};
use crate::tx::write_transaction;

/// The seeded programme "Women heads of household 1398".
const WHH_1398: &str = "0169a6c0-0000-7000-8000-000000000001";

/// A name in Persian and in English.
type Names = (&'static str, &'static str);

/// Districts of Mashhad's margins and some of their neighbourhoods.
const DISTRICTS: &[(&str, &str, &[Names])] = &[
    (
        "منطقه ۲",
        "District 2",
        &[
            ("شهرک شهید رجایی", "Shahid Rajaei"),
            ("بهارستان", "Baharestan"),
            ("سیدی", "Seyyedi"),
        ],
    ),
    (
        "منطقه ۳",
        "District 3",
        &[
            ("گلشهر", "Golshahr"),
            ("التیمور", "Altimur"),
            ("شهید قربانی", "Shahid Ghorbani"),
        ],
    ),
    (
        "منطقه ۴",
        "District 4",
        &[
            ("طلاب", "Tollab"),
            ("پنج تن", "Panjtan"),
            ("کشاورز", "Keshavarz"),
        ],
    ),
    (
        "منطقه ۵",
        "District 5",
        &[
            ("خواجه ربیع", "Khajeh Rabi"),
            ("قلعه ساختمان", "Ghaleh Sakhteman"),
            ("ابوذر", "Abuzar"),
        ],
    ),
    (
        "منطقه ۶",
        "District 6",
        &[("نوده", "Nowdeh"), ("مهرآباد", "Mehrabad"), ("حر", "Hor")],
    ),
];

const WOMEN: &[&str] = &[
    "فاطمه",
    "زهرا",
    "مریم",
    "معصومه",
    "زینب",
    "سکینه",
    "طاهره",
    "رقیه",
    "لیلا",
    "سمیه",
    "نرگس",
    "اعظم",
    "کبری",
    "صغری",
    "منیره",
    "عفت",
    "ربابه",
    "شهلا",
    "مهری",
    "پروین",
    "زهره",
    "الهام",
    "سارا",
    "مهدیه",
];
const MEN: &[&str] = &[
    "محمد",
    "علی",
    "حسین",
    "حسن",
    "رضا",
    "مهدی",
    "عباس",
    "قاسم",
    "جواد",
    "اکبر",
    "محمود",
    "غلامرضا",
    "ابراهیم",
    "اسماعیل",
    "یوسف",
    "مصطفی",
    "سعید",
    "حمید",
    "مجید",
    "ناصر",
];
const FAMILIES: &[&str] = &[
    "محمدی",
    "حسینی",
    "رضایی",
    "احمدی",
    "کریمی",
    "موسوی",
    "جعفری",
    "قاسمی",
    "رحیمی",
    "عباسی",
    "نوری",
    "صادقی",
    "حیدری",
    "یوسفی",
    "اکبری",
    "هاشمی",
    "کاظمی",
    "سلطانی",
    "نظری",
    "غلامی",
    "افغانی‌پور",
    "خراسانی",
    "مشهدی",
    "تربتی",
    "نیشابوری",
    "سبزواری",
    "قوچانی",
    "بجنوردی",
];
const STREETS: &[&str] = &["کوچه", "خیابان", "بلوار", "میدان"];

/// What was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    pub neighbourhoods: usize,
    pub households: usize,
    pub persons: usize,
    pub enrolments: usize,
    pub transitions: usize,
}

/// A small, deterministic pseudo-random generator (splitmix64): the same seed gives the same demo.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A deterministic id that sorts like a UUID v7 made in order.
    fn id(&mut self, counter: &mut u64) -> String {
        *counter += 1;
        let high = 0x0190_0000_0000_u64 + *counter;
        let low = self.next();
        uuid::Uuid::from_u64_pair(
            (high << 16) | 0x7000 | (low >> 52),
            (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000,
        )
        .to_string()
    }
}

/// The `n`-th national ID of the demo: nine digits from a bijection of `n`, and the check digit.
fn national_id(n: u64) -> String {
    let body = (n.wrapping_mul(7919) + 10_000_019) % 1_000_000_000;
    let digits = format!("{body:09}");
    let sum: u32 = digits
        .chars()
        .filter_map(|c| c.to_digit(10))
        .zip((2..=10).rev())
        .map(|(d, w)| d * w)
        .sum();
    let remainder = sum % 11;
    let check = if remainder < 2 {
        remainder
    } else {
        11 - remainder
    };
    format!("{digits}{check}")
}

/// Fills an empty registry with `households` households (about three persons each).
pub fn load(
    conn: &mut DbConnection,
    households_wanted: usize,
    seed: u64,
    full_history: bool,
) -> Result<DemoSummary, StoreError> {
    write_transaction(conn, |conn| {
        let existing: i64 = households::table.count().get_result(conn)?;
        if existing > 0 {
            return Err(StoreError::Conflict(
                "the registry is not empty; demo data goes into an empty database".to_owned(),
            ));
        }
        let mut rng = Random(seed);
        let mut counter = 0_u64;
        let now = crate::now();
        let created = NaiveDate::from_ymd_opt(2019, 3, 21)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .unwrap_or(now);
        let code_taken: i64 = areas::table
            .filter(areas::code.eq("DEMO-KHR"))
            .count()
            .get_result(conn)?;
        if code_taken > 0 {
            return Err(StoreError::Conflict("demo areas exist already".to_owned()));
        }

        // Areas and facilitation offices.
        let mut area_rows = Vec::new();
        let mut org_rows = Vec::new();
        let area = |rng: &mut Random,
                    counter: &mut u64,
                    parent: Option<&str>,
                    level: &str,
                    code: String,
                    fa: &str,
                    en: &str| AreaRow {
            id: rng.id(counter),
            parent_id: parent.map(str::to_owned),
            level: level.to_owned(),
            code,
            name_fa: fa.to_owned(),
            name_en: en.to_owned(),
            version: 1,
            created_at: created,
            updated_at: created,
        };
        let province = area(
            &mut rng,
            &mut counter,
            None,
            "province",
            "DEMO-KHR".into(),
            "خراسان رضوی",
            "Khorasan Razavi",
        );
        let city = area(
            &mut rng,
            &mut counter,
            Some(&province.id),
            "city",
            "DEMO-MSH".into(),
            "مشهد",
            "Mashhad",
        );
        let (province_id, city_id) = (province.id.clone(), city.id.clone());
        area_rows.push(province);
        area_rows.push(city);
        let mut neighbourhoods: Vec<String> = Vec::new();
        for (d, (district_fa, district_en, hoods)) in DISTRICTS.iter().enumerate() {
            let district = area(
                &mut rng,
                &mut counter,
                Some(&city_id),
                "district",
                format!("DEMO-MSH-D{}", d + 2),
                district_fa,
                district_en,
            );
            let district_id = district.id.clone();
            area_rows.push(district);
            for (n, (fa, en)) in hoods.iter().enumerate() {
                let hood = area(
                    &mut rng,
                    &mut counter,
                    Some(&district_id),
                    "neighbourhood",
                    format!("DEMO-MSH-D{}-N{}", d + 2, n + 1),
                    fa,
                    en,
                );
                neighbourhoods.push(hood.id.clone());
                area_rows.push(hood);
            }
            org_rows.push(OrganisationRow {
                id: rng.id(&mut counter),
                name: format!("دفتر تسهیلگری {district_fa} (demo)"),
                kind: "facilitation_office".to_owned(),
                version: 1,
                created_at: created,
                updated_at: created,
            });
        }
        let _ = province_id;
        bulk_insert!(conn, areas::table, area_rows);
        bulk_insert!(conn, organisations::table, org_rows);

        let mut summary = DemoSummary {
            neighbourhoods: neighbourhoods.len(),
            ..DemoSummary::default()
        };
        let year_start = NaiveDate::from_ymd_opt(2019, 3, 21).unwrap_or_default();
        let mut person_counter = 0_u64;
        // Households first entering each state, per neighbourhood and day (`progress_counts`).
        let mut counts: std::collections::BTreeMap<(String, EnrolmentState, NaiveDate), i64> =
            std::collections::BTreeMap::new();

        // Households, persons, memberships, consents, assessments and enrolments, in batches.
        let batch = 2000;
        let mut done = 0;
        while done < households_wanted {
            let size = batch.min(households_wanted - done);
            let (
                mut h_rows,
                mut p_rows,
                mut m_rows,
                mut c_rows,
                mut a_rows,
                mut e_rows,
                mut t_rows,
            ) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            let mut s_rows = Vec::new();
            for _ in 0..size {
                let hood = neighbourhoods[rng.below(neighbourhoods.len())].clone();
                let address = format!(
                    "{} {} {}، پلاک {}",
                    rng.pick(STREETS),
                    rng.pick(FAMILIES).trim_end_matches('ی'),
                    rng.below(40) + 1,
                    rng.below(200) + 1
                );
                let household_id = rng.id(&mut counter);
                h_rows.push(HouseholdRow {
                    id: household_id.clone(),
                    neighbourhood_id: hood.clone(),
                    address_normalised: normalise(&address),
                    address,
                    postal_code: None,
                    version: 1,
                    created_at: created,
                    updated_at: created,
                });
                let family = rng.pick(FAMILIES);
                let woman_head = rng.chance(65);
                let mut members: Vec<(&str, &str, i32)> = Vec::new();
                if woman_head {
                    members.push((
                        "female",
                        "head",
                        25 + i32::try_from(rng.below(35)).unwrap_or(0),
                    ));
                } else {
                    members.push((
                        "male",
                        "head",
                        28 + i32::try_from(rng.below(35)).unwrap_or(0),
                    ));
                    members.push((
                        "female",
                        "spouse",
                        25 + i32::try_from(rng.below(30)).unwrap_or(0),
                    ));
                }
                for _ in 0..rng.below(4) {
                    members.push((
                        if rng.chance(50) { "female" } else { "male" },
                        "child",
                        i32::try_from(rng.below(18)).unwrap_or(0),
                    ));
                }
                let mut head_id = String::new();
                for (sex, role, age) in members {
                    person_counter += 1;
                    let first = if sex == "female" {
                        rng.pick(WOMEN)
                    } else {
                        rng.pick(MEN)
                    };
                    let birth = NaiveDate::from_ymd_opt(2019 - age, 1, 1)
                        .and_then(|d| d.checked_add_days(Days::new(rng.below(365) as u64)))
                        .unwrap_or(year_start);
                    let person_id = rng.id(&mut counter);
                    if role == "head" {
                        head_id = person_id.clone();
                    }
                    p_rows.push(PersonRow {
                        id: person_id.clone(),
                        national_id: national_id(person_counter),
                        first_name: first.to_owned(),
                        last_name: family.to_owned(),
                        first_name_normalised: normalise(first),
                        last_name_normalised: normalise(family),
                        birth_date: birth,
                        sex: sex.to_owned(),
                        mobile: (role != "child")
                            .then(|| format!("0915{:07}", rng.below(10_000_000))),
                        education: Some(
                            ["none", "literacy", "primary", "lower_secondary", "diploma"]
                                [rng.below(5)]
                            .to_owned(),
                        ),
                        household_id: Some(household_id.clone()),
                        household_role: Some(role.to_owned()),
                        neighbourhood_id: Some(hood.clone()),
                        merged_into: None,
                        version: 1,
                        created_at: created,
                        updated_at: created,
                    });
                    m_rows.push((
                        household_memberships::id.eq(rng.id(&mut counter)),
                        household_memberships::person_id.eq(person_id),
                        household_memberships::household_id.eq(household_id.clone()),
                        household_memberships::role.eq(role),
                        household_memberships::started_on
                            .eq(NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or(year_start)),
                        household_memberships::recorded_at.eq(created),
                    ));
                }
                summary.households += 1;

                // Women-headed households: most are identified for the programme, and move on.
                // With `full_history`, every household goes the whole way, pausing twice.
                if full_history || (woman_head && rng.chance(70)) {
                    use EnrolmentState::*;
                    let identified = year_start + Days::new(rng.below(120) as u64);
                    let states: Vec<EnrolmentState> = if full_history {
                        vec![
                            Identified, Assessed, Enrolled, Paused, Enrolled, InTraining, Paused,
                            InTraining, Permitted, Financed, Employed, Graduated,
                        ]
                    } else {
                        let path = [
                            Identified, Assessed, Enrolled, InTraining, Permitted, Employed,
                        ];
                        path[..1 + rng.below(path.len())].to_vec()
                    };
                    let enrolment_id = rng.id(&mut counter);
                    let mut on = identified;
                    for (seq, state) in states.iter().enumerate() {
                        if seq > 0 {
                            on = on
                                + Days::new(if full_history {
                                    1 + rng.below(20) as u64
                                } else {
                                    10 + rng.below(40) as u64
                                });
                        }
                        if *state == Assessed {
                            a_rows.push(AssessmentRow {
                                id: rng.id(&mut counter),
                                person_id: head_id.clone(),
                                neighbourhood_id: Some(hood.clone()),
                                kind: "baseline".to_owned(),
                                assessed_on: on,
                                employment_status: [
                                    "unemployed",
                                    "unemployed",
                                    "employed",
                                    "not_in_labour_force",
                                ][rng.below(4)]
                                .to_owned(),
                                income_band: ["none", "under_20m", "under_20m", "20m_to_50m"]
                                    [rng.below(4)]
                                .to_owned(),
                                social_insurance: rng.chance(30),
                                welfare_services: [
                                    "relief_committee",
                                    "cash_subsidy",
                                    "relief_committee cash_subsidy",
                                    "welfare_organisation",
                                ][rng.below(4)]
                                .to_owned(),
                                skills: Some(
                                    ["خیاطی", "قالی‌بافی", "آشپزی", "صنایع دستی"][rng.below(4)]
                                        .to_owned(),
                                ),
                                disability: rng.chance(5),
                                dependants: i32::try_from(rng.below(5)).unwrap_or(0),
                                recorded_by: None,
                                created_at: created,
                            });
                        }
                        let first_entry = !states[..seq].contains(state);
                        if *state == Enrolled && first_entry {
                            c_rows.push(ConsentRow {
                                id: rng.id(&mut counter),
                                person_id: head_id.clone(),
                                purpose: "programme".to_owned(),
                                share_with_partners: rng.chance(60),
                                given_on: on,
                                recorded_by: None,
                                recorded_at: created,
                                withdrawn_on: None,
                                withdrawn_by: None,
                                withdrawal_reason: None,
                            });
                        }
                        if first_entry {
                            s_rows.push((
                                enrolment_stages::enrolment_id.eq(enrolment_id.clone()),
                                enrolment_stages::stage.eq(state.as_str()),
                                enrolment_stages::first_on.eq(on),
                                enrolment_stages::programme_id.eq(WHH_1398),
                                enrolment_stages::neighbourhood_id.eq(hood.clone()),
                            ));
                            *counts.entry((hood.clone(), *state, on)).or_insert(0) += 1;
                        }
                        t_rows.push(TransitionRow {
                            id: rng.id(&mut counter),
                            enrolment_id: enrolment_id.clone(),
                            seq: i32::try_from(seq + 1).unwrap_or(1),
                            from_state: (seq > 0).then(|| states[seq - 1].as_str().to_owned()),
                            to_state: state.as_str().to_owned(),
                            effective_on: on,
                            reason: None,
                            actor_kind: "system".to_owned(),
                            actor_id: None,
                            recorded_at: created,
                        });
                    }
                    let last = states.last().copied().unwrap_or(Identified);
                    e_rows.push(EnrolmentRow {
                        id: enrolment_id,
                        programme_id: WHH_1398.to_owned(),
                        household_id: household_id.clone(),
                        neighbourhood_id: hood.clone(),
                        state: last.as_str().to_owned(),
                        state_since: on,
                        resume_to: None,
                        version: 1,
                        created_at: created,
                        updated_at: created,
                    });
                    summary.enrolments += 1;
                    summary.transitions += states.len();
                }
            }
            summary.persons += p_rows.len();
            bulk_insert!(conn, households::table, h_rows);
            bulk_insert!(conn, persons::table, p_rows);
            bulk_insert!(conn, household_memberships::table, m_rows);
            bulk_insert!(conn, consents::table, c_rows);
            bulk_insert!(conn, assessments::table, a_rows);
            bulk_insert!(conn, enrolments::table, e_rows);
            bulk_insert!(conn, enrolment_transitions::table, t_rows);
            bulk_insert!(conn, enrolment_stages::table, s_rows);
            done += size;
        }
        let count_rows: Vec<_> = counts
            .into_iter()
            .map(|((hood, state, day), n)| {
                (
                    progress_counts::programme_id.eq(WHH_1398),
                    progress_counts::neighbourhood_id.eq(hood),
                    progress_counts::stage.eq(state.as_str()),
                    progress_counts::day.eq(day),
                    progress_counts::households.eq(n),
                )
            })
            .collect();
        bulk_insert!(conn, progress_counts::table, count_rows);
        crate::changes::record_existing(conn)?;
        audit::append(
            conn,
            &AuditContext::system(),
            Event {
                action: "demo_data.load",
                entity: "registry",
                entity_id: None,
                before: None,
                after: Some(json!({
                    "seed": seed,
                    "neighbourhoods": summary.neighbourhoods,
                    "households": summary.households,
                    "persons": summary.persons,
                    "enrolments": summary.enrolments,
                    "transitions": summary.transitions,
                })),
            },
        )?;
        Ok(summary)
    })
    .and_then(|summary| {
        // Fresh statistics, so the planner knows the tables are no longer empty; on PostgreSQL
        // also set hint bits and the visibility map now rather than during the first reads.
        use diesel::connection::SimpleConnection;
        let maintenance = match conn {
            DbConnection::Pg(_) => "VACUUM ANALYZE",
            DbConnection::Sqlite(_) => "ANALYZE",
        };
        conn.batch_execute(maintenance)?;
        Ok(summary)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_national_ids_are_valid_and_distinct() {
        let ids: Vec<String> = (1..2000).map(national_id).collect();
        for id in &ids {
            assert!(
                tavana_domain::national_id::NationalId::parse("id", id).is_ok(),
                "{id}"
            );
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn the_generator_is_deterministic() {
        let (mut a, mut b) = (Random(7), Random(7));
        let (mut ca, mut cb) = (0, 0);
        assert_eq!(a.id(&mut ca), b.id(&mut cb));
        assert_eq!(a.below(100), b.below(100));
    }
}
