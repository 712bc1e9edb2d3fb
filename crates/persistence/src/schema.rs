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

diesel::table! {
    organisations (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Text,
        password_hash -> Text,
        role -> Text,
        organisation_id -> Text,
        active -> Bool,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    user_areas (user_id, area_id) {
        user_id -> Text,
        area_id -> Text,
    }
}

diesel::table! {
    api_clients (id) {
        id -> Text,
        client_id -> Text,
        name -> Text,
        secret_hash -> Text,
        scopes -> Text,
        organisation_id -> Text,
        expires_on -> Date,
        active -> Bool,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        token_hash -> Text,
        family_id -> Text,
        user_id -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Text,
        username -> Text,
        address -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    rate_limit_windows (key, window_start) {
        key -> Text,
        window_start -> Timestamp,
        hits -> BigInt,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        entity -> Text,
        entity_id -> Nullable<Text>,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
        request_id -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    households (id) {
        id -> Text,
        neighbourhood_id -> Text,
        address -> Text,
        address_normalised -> Text,
        postal_code -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (principal, key) {
        principal -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Integer,
        location -> Nullable<Text>,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    persons (id) {
        id -> Text,
        national_id -> Text,
        first_name -> Text,
        last_name -> Text,
        first_name_normalised -> Text,
        last_name_normalised -> Text,
        birth_date -> Date,
        sex -> Text,
        mobile -> Nullable<Text>,
        education -> Nullable<Text>,
        household_id -> Nullable<Text>,
        household_role -> Nullable<Text>,
        neighbourhood_id -> Nullable<Text>,
        merged_into -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    duplicate_candidates (person_id, candidate_id) {
        person_id -> Text,
        candidate_id -> Text,
        neighbourhood_id -> Nullable<Text>,
        status -> Text,
        detected_at -> Timestamp,
        reviewed_by -> Nullable<Text>,
        reviewed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    household_memberships (id) {
        id -> Text,
        person_id -> Text,
        household_id -> Text,
        role -> Text,
        started_on -> Date,
        ended_on -> Nullable<Date>,
        reason -> Nullable<Text>,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    consents (id) {
        id -> Text,
        person_id -> Text,
        purpose -> Text,
        share_with_partners -> Bool,
        given_on -> Date,
        recorded_by -> Nullable<Text>,
        recorded_at -> Timestamp,
        withdrawn_on -> Nullable<Date>,
        withdrawn_by -> Nullable<Text>,
        withdrawal_reason -> Nullable<Text>,
    }
}

diesel::table! {
    programmes (id) {
        id -> Text,
        code -> Text,
        name_fa -> Text,
        name_en -> Text,
        jalali_year -> Integer,
        area_id -> Nullable<Text>,
        target_households -> Nullable<Integer>,
        starts_on -> Date,
        ends_on -> Date,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        advance_on_permit -> Bool,
        supporters_per_neighbourhood -> Integer,
        advance_on_loan -> Bool,
    }
}

diesel::table! {
    programme_targets (programme_id, stage) {
        programme_id -> Text,
        stage -> Text,
        target -> Integer,
    }
}

diesel::table! {
    programme_partners (programme_id, organisation_id) {
        programme_id -> Text,
        organisation_id -> Text,
    }
}

diesel::table! {
    enrolments (id) {
        id -> Text,
        programme_id -> Text,
        household_id -> Text,
        neighbourhood_id -> Text,
        state -> Text,
        state_since -> Date,
        resume_to -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    enrolment_transitions (id) {
        id -> Text,
        enrolment_id -> Text,
        seq -> Integer,
        from_state -> Nullable<Text>,
        to_state -> Text,
        effective_on -> Date,
        reason -> Nullable<Text>,
        actor_kind -> Text,
        actor_id -> Nullable<Text>,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    assessments (id) {
        id -> Text,
        person_id -> Text,
        neighbourhood_id -> Nullable<Text>,
        kind -> Text,
        assessed_on -> Date,
        employment_status -> Text,
        income_band -> Text,
        social_insurance -> Bool,
        welfare_services -> Text,
        skills -> Nullable<Text>,
        disability -> Bool,
        dependants -> Integer,
        recorded_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    employment_outcomes (id) {
        id -> Text,
        person_id -> Text,
        neighbourhood_id -> Nullable<Text>,
        kind -> Text,
        started_on -> Date,
        evidence -> Text,
        evidence_reference -> Nullable<Text>,
        recorded_by -> Nullable<Text>,
        verified_by -> Nullable<Text>,
        verified_on -> Nullable<Date>,
        version -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    outcome_follow_ups (outcome_id, months) {
        outcome_id -> Text,
        months -> Integer,
        due_on -> Date,
        done_on -> Nullable<Date>,
        still_employed -> Nullable<Bool>,
        notes -> Nullable<Text>,
        recorded_by -> Nullable<Text>,
    }
}

diesel::table! {
    organisation_areas (organisation_id, area_id) {
        organisation_id -> Text,
        area_id -> Text,
    }
}

diesel::table! {
    partner_policies (organisation_id) {
        organisation_id -> Text,
        purpose -> Text,
        starts_on -> Date,
        ends_on -> Date,
        resources -> Text,
        withheld -> Text,
        writes -> Text,
        areas -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    changes (seq) {
        seq -> BigInt,
        entity -> Text,
        entity_id -> Text,
        op -> Text,
        changed_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        organisation_id -> Text,
        url -> Text,
        event_types -> Text,
        secret -> Text,
        enabled -> Bool,
        failures -> Integer,
        disabled_at -> Nullable<Timestamp>,
        last_seq -> BigInt,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        change_seq -> BigInt,
        event_type -> Text,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
    }
}

diesel::joinable!(households -> areas (neighbourhood_id));
diesel::joinable!(employment_outcomes -> persons (person_id));
diesel::joinable!(outcome_follow_ups -> employment_outcomes (outcome_id));
diesel::joinable!(assessments -> persons (person_id));
diesel::joinable!(consents -> persons (person_id));
diesel::joinable!(programme_targets -> programmes (programme_id));
diesel::joinable!(enrolments -> programmes (programme_id));
diesel::joinable!(enrolments -> households (household_id));
diesel::joinable!(enrolment_transitions -> enrolments (enrolment_id));
diesel::joinable!(persons -> households (household_id));
diesel::joinable!(household_memberships -> persons (person_id));
diesel::joinable!(users -> organisations (organisation_id));
diesel::joinable!(user_areas -> users (user_id));
diesel::table! {
    courses (id) {
        id -> Text,
        category -> Text,
        title_fa -> Text,
        title_en -> Text,
        hours -> Integer,
        provider_kind -> Text,
        sensitive -> Bool,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    cohorts (id) {
        id -> Text,
        course_id -> Text,
        provider_id -> Text,
        neighbourhood_id -> Text,
        venue -> Text,
        capacity -> Integer,
        starts_on -> Date,
        ends_on -> Date,
        trainer_id -> Nullable<Text>,
        state -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    cohort_sessions (id) {
        id -> Text,
        cohort_id -> Text,
        held_on -> Date,
        topic -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    registrations (id) {
        id -> Text,
        cohort_id -> Text,
        person_id -> Text,
        status -> Text,
        position -> BigInt,
        certificate_number -> Nullable<Text>,
        completed_on -> Nullable<Date>,
        registered_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    attendance (session_id, person_id) {
        session_id -> Text,
        person_id -> Text,
        mark -> Text,
        recorded_by -> Nullable<Text>,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    business_activities (code) {
        code -> Text,
        name_fa -> Text,
        name_en -> Text,
    }
}

diesel::table! {
    permit_applications (id) {
        id -> Text,
        person_id -> Text,
        neighbourhood_id -> Text,
        activity -> Text,
        address -> Text,
        state -> Text,
        applied_on -> Date,
        permit_id -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    permit_application_steps (application_id, seq) {
        application_id -> Text,
        seq -> Integer,
        from_state -> Nullable<Text>,
        to_state -> Text,
        effective_on -> Date,
        notes -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    permits (id) {
        id -> Text,
        number -> Text,
        application_id -> Text,
        person_id -> Text,
        neighbourhood_id -> Text,
        activity -> Text,
        state -> Text,
        state_reason -> Nullable<Text>,
        issued_on -> Date,
        valid_from -> Date,
        valid_until -> Date,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    permit_periods (permit_id, seq) {
        permit_id -> Text,
        seq -> Integer,
        valid_from -> Date,
        valid_until -> Date,
        recorded_by -> Nullable<Text>,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    permit_visits (id) {
        id -> Text,
        permit_id -> Text,
        visited_on -> Date,
        notes -> Text,
        recorded_by -> Nullable<Text>,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    supporters (id) {
        id -> Text,
        user_id -> Text,
        person_id -> Nullable<Text>,
        organisation_id -> Nullable<Text>,
        programme_id -> Text,
        neighbourhood_id -> Text,
        starts_on -> Date,
        ends_on -> Nullable<Date>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    supporter_balances (supporter_id) {
        supporter_id -> Text,
        balance -> BigInt,
    }
}

diesel::table! {
    producer_links (supporter_id, person_id) {
        supporter_id -> Text,
        person_id -> Text,
        linked_on -> Date,
        linked_by -> Nullable<Text>,
    }
}

diesel::table! {
    products (id) {
        id -> Text,
        person_id -> Text,
        kind -> Text,
        name -> Text,
        unit -> Text,
        reference_price -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    purchases (id) {
        id -> Text,
        supporter_id -> Text,
        producer_id -> Text,
        state -> Text,
        total -> BigInt,
        ordered_on -> Date,
        received_on -> Nullable<Date>,
        paid_on -> Nullable<Date>,
        cancelled_on -> Nullable<Date>,
        cancel_reason -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        reference -> Nullable<Text>,
    }
}

diesel::table! {
    purchase_lines (purchase_id, line_no) {
        purchase_id -> Text,
        line_no -> Integer,
        product_id -> Nullable<Text>,
        kind -> Text,
        description -> Text,
        quantity -> BigInt,
        unit_price -> BigInt,
        amount -> BigInt,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> Text,
        supporter_id -> Nullable<Text>,
        kind -> Text,
        amount -> BigInt,
        purchase_id -> Nullable<Text>,
        effective_on -> Date,
        note -> Nullable<Text>,
        recorded_by -> Nullable<Text>,
        recorded_at -> Timestamp,
        loan_id -> Nullable<Text>,
    }
}

diesel::table! {
    loan_products (id) {
        id -> Text,
        name -> Text,
        min_amount -> BigInt,
        max_amount -> BigInt,
        term_months -> Integer,
        grace_months -> Integer,
        fee_rate_bp -> Integer,
        requirement -> Text,
        funder_id -> Text,
        second_approval_above -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    loans (id) {
        id -> Text,
        product_id -> Text,
        person_id -> Text,
        neighbourhood_id -> Text,
        amount -> BigInt,
        purpose -> Text,
        state -> Text,
        term_months -> Integer,
        grace_months -> Integer,
        fee_rate_bp -> Integer,
        approvals_needed -> Integer,
        applied_on -> Date,
        rejection_reason -> Nullable<Text>,
        disbursed_on -> Nullable<Date>,
        closed_on -> Nullable<Date>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    loan_approvals (loan_id, decision, approver_id) {
        loan_id -> Text,
        decision -> Text,
        approver_id -> Text,
        decided_at -> Timestamp,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    loan_instalments (loan_id, number) {
        loan_id -> Text,
        number -> Integer,
        due_on -> Date,
        principal -> BigInt,
        fee -> BigInt,
    }
}

diesel::table! {
    enrolment_stages (enrolment_id, stage) {
        enrolment_id -> Text,
        stage -> Text,
        first_on -> Date,
        programme_id -> Text,
        neighbourhood_id -> Text,
    }
}

diesel::table! {
    progress_counts (programme_id, neighbourhood_id, stage, day) {
        programme_id -> Text,
        neighbourhood_id -> Text,
        stage -> Text,
        day -> Date,
        households -> BigInt,
    }
}

diesel::table! {
    import_jobs (id) {
        id -> Text,
        kind -> Text,
        mode -> Text,
        atomicity -> Text,
        format -> Text,
        state -> Text,
        principal -> Text,
        actor_kind -> Text,
        actor_id -> Nullable<Text>,
        scope_user -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        checksum -> Text,
        file_path -> Text,
        rows_read -> BigInt,
        rows_done -> BigInt,
        created -> BigInt,
        updated -> BigInt,
        unchanged -> BigInt,
        failed -> BigInt,
        message -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        actor_role -> Nullable<Text>,
        line_done -> Nullable<BigInt>,
    }
}

diesel::table! {
    import_errors (job_id, row_no, seq) {
        job_id -> Text,
        row_no -> BigInt,
        seq -> Integer,
        col -> Nullable<Text>,
        code -> Text,
        message -> Text,
    }
}

diesel::joinable!(user_areas -> areas (area_id));
diesel::joinable!(cohorts -> courses (course_id));
diesel::joinable!(cohort_sessions -> cohorts (cohort_id));
diesel::joinable!(registrations -> cohorts (cohort_id));
diesel::joinable!(registrations -> persons (person_id));
diesel::joinable!(attendance -> cohort_sessions (session_id));
diesel::joinable!(permit_application_steps -> permit_applications (application_id));
diesel::joinable!(permit_periods -> permits (permit_id));
diesel::joinable!(permit_visits -> permits (permit_id));
diesel::joinable!(enrolment_stages -> enrolments (enrolment_id));
diesel::joinable!(producer_links -> supporters (supporter_id));
diesel::joinable!(purchases -> supporters (supporter_id));
diesel::joinable!(purchase_lines -> purchases (purchase_id));
diesel::joinable!(ledger_entries -> supporters (supporter_id));
diesel::joinable!(ledger_entries -> loans (loan_id));
diesel::joinable!(loans -> loan_products (product_id));
diesel::joinable!(loans -> persons (person_id));
diesel::joinable!(loan_instalments -> loans (loan_id));
diesel::joinable!(loan_approvals -> loans (loan_id));
diesel::joinable!(supporter_balances -> supporters (supporter_id));
diesel::joinable!(permits -> business_activities (activity));
diesel::joinable!(permit_applications -> business_activities (activity));
diesel::joinable!(api_clients -> organisations (organisation_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(partner_policies -> organisations (organisation_id));
diesel::joinable!(webhook_endpoints -> organisations (organisation_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    areas,
    organisations,
    users,
    user_areas,
    api_clients,
    refresh_tokens,
    login_failures,
    rate_limit_windows,
    audit_log,
    households,
    idempotency_keys,
    persons,
    duplicate_candidates,
    household_memberships,
    consents,
    programmes,
    programme_targets,
    programme_partners,
    enrolments,
    enrolment_transitions,
    assessments,
    employment_outcomes,
    outcome_follow_ups,
    organisation_areas,
    courses,
    cohorts,
    cohort_sessions,
    registrations,
    attendance,
    counters,
    business_activities,
    permit_applications,
    permit_application_steps,
    permits,
    permit_periods,
    permit_visits,
    supporters,
    supporter_balances,
    producer_links,
    products,
    purchases,
    purchase_lines,
    ledger_entries,
    enrolment_stages,
    progress_counts,
    import_jobs,
    import_errors,
    loan_products,
    loans,
    loan_approvals,
    loan_instalments,
    partner_policies,
    changes,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
);

diesel::allow_columns_to_appear_in_same_group_by_clause!(cohorts::course_id, registrations::status);
