//! `/v1/patients`: patient records.

use axum::{
    Extension,
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use garde::Validate;
use serde::{Deserialize, Deserializer, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{
    AppState,
    audit::{AuditContext, AuditRecorded, mark_recorded},
    error::ApiError,
    extract::{IfMatch, Json, Path, Query, etag},
    paging::{ListRequest, Page, PageParams, required_date},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        patient::{Identifier, NewPatient, Patient, PatientPatch, Sex, identifiers_problem},
        text,
    },
    service::FieldError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Patient routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_patient, search_patients))
        .routes(routes!(get_patient, patch_patient))
}

/// A new patient.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10", "sex": "female",
    "email": "ada@example.org", "phone": "+44 20 7946 0000"
}))]
pub struct CreatePatient {
    /// Given name.
    #[garde(length(chars, min = 1, max = 100), custom(text::name))]
    #[schema(min_length = 1, max_length = 100)]
    pub given_name: String,
    /// Family name.
    #[garde(length(chars, min = 1, max = 100), custom(text::name))]
    #[schema(min_length = 1, max_length = 100)]
    pub family_name: String,
    /// Date of birth, `YYYY-MM-DD`, not in the future.
    #[garde(skip)]
    #[schema(format = Date, example = "1990-12-10")]
    pub birth_date: String,
    /// Administrative sex.
    #[garde(skip)]
    pub sex: Sex,
    /// E-mail address.
    #[serde(default)]
    #[garde(inner(
        length(max = 320),
        pattern(r"^[^@ \t\r\n]{1,64}@[^@ \t\r\n]{1,255}$"),
        custom(text::single_line)
    ))]
    #[schema(max_length = 320, pattern = r"^[^@ \t\r\n]{1,64}@[^@ \t\r\n]{1,255}$")]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default)]
    #[garde(inner(pattern(r"^\+?[0-9 ()./-]{3,32}$")))]
    #[schema(pattern = r"^\+?[0-9 ()./-]{3,32}$")]
    pub phone: Option<String>,
    /// Identifiers other systems give the patient (a hospital's record number, a national id); each
    /// (system, value) belongs to one patient (409 `identifier-taken`). Set by staff only.
    #[serde(default)]
    #[garde(skip)]
    #[schema(max_items = 5)]
    pub identifiers: Vec<Identifier>,
}

/// A partial update: absent fields stay; `null` clears email or phone.
#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"familyName": "King", "phone": null}))]
pub struct PatchPatientBody {
    /// New given name.
    #[serde(default)]
    #[garde(inner(length(chars, min = 1, max = 100), custom(text::name)))]
    #[schema(min_length = 1, max_length = 100)]
    pub given_name: Option<String>,
    /// New family name.
    #[serde(default)]
    #[garde(inner(length(chars, min = 1, max = 100), custom(text::name)))]
    #[schema(min_length = 1, max_length = 100)]
    pub family_name: Option<String>,
    /// New date of birth.
    #[serde(default)]
    #[garde(skip)]
    #[schema(format = Date, example = "1990-12-10")]
    pub birth_date: Option<String>,
    /// New sex.
    #[serde(default)]
    #[garde(skip)]
    pub sex: Option<Sex>,
    /// New e-mail, or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[garde(inner(inner(
        length(max = 320),
        pattern(r"^[^@ \t\r\n]{1,64}@[^@ \t\r\n]{1,255}$"),
        custom(text::single_line)
    )))]
    #[schema(value_type = Option<String>, nullable, max_length = 320, pattern = r"^[^@ \t\r\n]{1,64}@[^@ \t\r\n]{1,255}$")]
    pub email: Option<Option<String>>,
    /// New phone, or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[garde(inner(inner(pattern(r"^\+?[0-9 ()./-]{3,32}$"))))]
    #[schema(value_type = Option<String>, nullable, pattern = r"^\+?[0-9 ()./-]{3,32}$")]
    pub phone: Option<Option<String>>,
    /// The new list of identifiers, replacing the old (`[]` removes them all). Staff only.
    #[serde(default)]
    #[garde(skip)]
    #[schema(max_items = 5)]
    pub identifiers: Option<Vec<Identifier>>,
}

/// Tells an absent field (`None`, by `default`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A patient record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0193a5a0-7c1e-7d2a-9b1e-2f4c5d6e7f80", "givenName": "Ada", "familyName": "Lovelace",
    "birthDate": "1990-12-10", "sex": "female", "email": "ada@example.org", "version": 1,
    "createdAt": "2026-11-28T07:00:00.000Z", "updatedAt": "2026-11-28T07:00:00.000Z"
}))]
pub struct PatientResponse {
    /// Patient id.
    pub id: Uuid,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    #[schema(format = Date)]
    pub birth_date: String,
    /// Administrative sex.
    pub sex: Sex,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Identifiers other systems give the patient.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Version; also the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Patient> for PatientResponse {
    fn from(p: Patient) -> Self {
        Self {
            id: p.id,
            given_name: p.given_name,
            family_name: p.family_name,
            birth_date: crate::domain::timefmt::date(p.birth_date),
            sex: p.sex,
            email: p.email,
            phone: p.phone,
            identifiers: p.identifiers,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Parses a date of birth: `YYYY-MM-DD`, from 1900 up to today.
fn birth_date(field: &str, text: &str) -> Result<Date, FieldError> {
    let date =
        crate::domain::timefmt::parse_date(text).ok_or_else(|| FieldError::new(field, "must be a date YYYY-MM-DD"))?;
    if date > OffsetDateTime::now_utc().date() {
        return Err(FieldError::new(field, "must not be in the future"));
    }
    if date.year() < 1900 {
        return Err(FieldError::new(field, "must be 1900 or later"));
    }
    Ok(date)
}

fn validation(report: garde::Report, extra: Option<FieldError>) -> ApiError {
    let mut errors = match crate::service::ServiceError::from(report) {
        crate::service::ServiceError::Invalid(errors) => errors,
        _ => Vec::new(),
    };
    errors.extend(extra);
    ApiError::Validation(errors)
}

fn patient_headers(patient: &PatientResponse, location: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag(patient.version)) {
        headers.insert(header::ETAG, v);
    }
    if location && let Ok(v) = HeaderValue::from_str(&format!("/v1/patients/{}", patient.id)) {
        headers.insert(header::LOCATION, v);
    }
    headers
}

/// Registers a patient (admin, lab); the id is generated by the server.
#[utoipa::path(
    post,
    path = "/v1/patients",
    tag = "patients",
    security(("bearer" = [])),
    request_body = CreatePatient,
    responses(
        (status = 201, description = "created", body = PatientResponse, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not register patients"),
        (status = 409, description = "another patient has this e-mail address (`email-taken`) or one of these identifiers (`identifier-taken`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid field"),
    )
)]
async fn create_patient(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    body: Result<Json<CreatePatient>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin, Role::Lab])?;
    let Json(body) = body?;
    let patient = state
        .patients
        .create(new_patient(body)?, &audit.draft(&caller, StatusCode::CREATED))
        .await?;
    Ok(created(patient))
}

/// The patient `body` describes, each bad field named.
///
/// # Errors
/// 422 naming every invalid field.
pub(super) fn new_patient(body: CreatePatient) -> Result<NewPatient, ApiError> {
    let date = birth_date("birthDate", &body.birth_date);
    let identifiers = identifiers_problem(&body.identifiers).map(|e| FieldError::new("identifiers", e));
    match (body.validate(), date, identifiers) {
        (Ok(()), Ok(birth_date), None) => Ok(NewPatient {
            given_name: body.given_name,
            family_name: body.family_name,
            birth_date,
            sex: body.sex,
            email: body.email,
            phone: body.phone,
            identifiers: body.identifiers,
        }),
        (Ok(()), date, identifiers) => Err(ApiError::Validation(
            date.err().into_iter().chain(identifiers).collect(),
        )),
        (Err(report), date, identifiers) => Err(with(validation(report, date.err()), identifiers)),
    }
}

/// `error` with one more field error, when there is one.
fn with(error: ApiError, more: Option<FieldError>) -> ApiError {
    match (error, more) {
        (ApiError::Validation(mut errors), Some(more)) => {
            errors.push(more);
            ApiError::Validation(errors)
        }
        (error, _) => error,
    }
}

/// A provider's patient identity may give a record only the e-mail address its provider verified.
///
/// # Errors
/// 422 naming `email` for any other address.
pub(super) fn claims_own_email(caller: &Caller, email: Option<&str>) -> Result<(), ApiError> {
    match email {
        Some(email) if !caller.may_claim_email(email) => Err(ApiError::invalid(
            "email",
            "must be the address your sign-in verified (or leave it out and the lab records it)",
        )),
        _ => Ok(()),
    }
}

/// A patient may not set the identifiers other systems give them (they could claim another person's).
///
/// # Errors
/// 422 naming `identifiers` for a patient who sends any.
pub(super) fn staff_sets_identifiers(caller: &Caller, sent: bool) -> Result<(), ApiError> {
    if sent && caller.role == Role::Patient {
        return Err(ApiError::invalid(
            "identifiers",
            "identifiers are recorded by the lab, not by the patient",
        ));
    }
    Ok(())
}

/// The 201 of a new patient, with its Location and ETag, recorded in the audit trail with the write.
pub(super) fn created(patient: Patient) -> impl IntoResponse {
    let response = PatientResponse::from(patient);
    (
        StatusCode::CREATED,
        Extension(AuditRecorded),
        patient_headers(&response, true),
        axum::Json(response),
    )
}

/// How the front desk finds a patient: by e-mail, or by family name (a prefix) and birth date.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct PatientSearchParams {
    /// Exact e-mail address (compared trimmed and lower-cased).
    #[param(max_length = 254, example = "ada@example.org")]
    pub email: Option<String>,
    /// An identifier another system gives the patient, `<system>|<value>` (as FHIR's token search).
    #[param(max_length = 301, example = "https://hospital.example.org/mrn|MRN-004711")]
    pub identifier: Option<String>,
    /// Beginning of the family name, case- and accent-insensitive (`muller` finds `Müller`); with `birthDate`.
    #[param(max_length = 100, example = "lovel")]
    pub family_name: Option<String>,
    /// Birth date `YYYY-MM-DD`; with `familyName`.
    #[param(format = Date, example = "1990-12-10")]
    pub birth_date: Option<String>,
    /// Beginning of the given name, to narrow a name search.
    #[param(max_length = 100, example = "ad")]
    pub given_name: Option<String>,
}

/// Finds patients (lab, admin; never a patient): `?email=` (two GetItems: the address's guard, then the
/// profile), `?identifier=<system>|<value>` (two GetItems: the identifier's guard, then the profile), or `?familyName=&birthDate=[&givenName=]` (one Query per page on the search index, in name order).
/// Each patient found gets an audit event naming the search.
#[utoipa::path(
    get,
    path = "/v1/patients",
    tag = "patients",
    security(("bearer" = [])),
    params(PatientSearchParams, PageParams),
    responses(
        (status = 200, description = "a page of patients", body = Page<PatientResponse>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not search patients"),
        (status = 422, description = "neither or both searches, or a missing or invalid field"),
    )
)]
async fn search_patients(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PatientSearchParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<PatientResponse>>, ApiError> {
    caller.require(&[Role::Lab, Role::Admin])?;
    let too_long = |field: &str, value: &Option<String>, max: usize| match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(field, format!("at most {max} characters"))),
        _ => Ok(()),
    };
    too_long("email", &params.email, 254)?;
    too_long("familyName", &params.family_name, 100)?;
    too_long("givenName", &params.given_name, 100)?;
    let by_name = params.family_name.is_some() || params.birth_date.is_some() || params.given_name.is_some();
    let (found, query, next) = match (&params.email, by_name) {
        _ if params.identifier.is_some() && (params.email.is_some() || by_name) => {
            return Err(ApiError::invalid(
                "identifier",
                "search by identifier, e-mail or name: one of them",
            ));
        }
        (None, false) if params.identifier.is_some() => {
            let text = params.identifier.clone().unwrap_or_default();
            let identifier = Identifier::parse_token(&text).ok_or_else(|| {
                ApiError::invalid(
                    "identifier",
                    "must be <system>|<value>: a URI without | or # (up to 200), then 1 to 100 visible ASCII characters",
                )
            })?;
            ListRequest::new(&state, uri.path(), &[("identifier", Some(text.clone()))], &page, 20)?;
            let found: Vec<Patient> = state.patients.by_identifier(&identifier).await?.into_iter().collect();
            (found, format!("identifier={text}"), None)
        }
        (Some(email), false) => {
            // Limit and cursor are checked as for any list; one answer at most, so no next page.
            ListRequest::new(&state, uri.path(), &[("email", Some(email.clone()))], &page, 20)?;
            let found: Vec<Patient> = state.patients.by_email(email).await?.into_iter().collect();
            (found, format!("email={email}"), None)
        }
        (None, true) => {
            let family = params
                .family_name
                .clone()
                .ok_or_else(|| ApiError::invalid("familyName", "is required with birthDate"))?;
            let birth = required_date("birthDate", params.birth_date.as_deref())?;
            let date = crate::domain::timefmt::date(birth);
            let filters = [
                ("familyName", Some(family.clone())),
                ("birthDate", Some(date.clone())),
                ("givenName", params.given_name.clone()),
            ];
            let list = ListRequest::new(&state, uri.path(), &filters, &page, 20)?;
            let found = state
                .patients
                .search(birth, &family, params.given_name.as_deref(), list.limit(), list.start())
                .await?;
            let given = params
                .given_name
                .as_deref()
                .map(|g| format!("&givenName={g}"))
                .unwrap_or_default();
            let next = list.next_cursor(&state, found.next);
            (
                found.items,
                format!("familyName={family}&birthDate={date}{given}"),
                next,
            )
        }
        (Some(_), true) => return Err(ApiError::invalid("email", "search by e-mail or by name, not both")),
        (None, false) => {
            return Err(ApiError::invalid(
                "familyName",
                "give email, identifier, or familyName with birthDate",
            ));
        }
    };
    let events = found
        .iter()
        .map(|p| crate::domain::audit::AuditEvent {
            query: Some(query.clone()),
            ..audit.draft(&caller, StatusCode::OK).event(p.id)
        })
        .collect();
    state.audit.record_many_detached(events);
    Ok(axum::Json(Page {
        items: found.into_iter().map(PatientResponse::from).collect(),
        next_cursor: next,
    }))
}

/// Reads a patient (the patient themself, lab, doctor, admin).
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}",
    tag = "patients",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id")),
    responses(
        (status = 200, description = "the patient", body = PatientResponse, headers(("ETag" = String))),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no such patient (or not yours)"),
    )
)]
async fn get_patient(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Doctor, Role::Admin])?;
    let response = PatientResponse::from(state.patients.get(patient_id).await?);
    Ok((patient_headers(&response, false), axum::Json(response)))
}

/// Changes a patient (the patient themself, lab, admin); If-Match required.
#[utoipa::path(
    patch,
    path = "/v1/patients/{patientId}",
    tag = "patients",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("If-Match" = String, Header, description = "ETag of the version read", example = "\"1\""),
    ),
    request_body = PatchPatientBody,
    responses(
        (status = 200, description = "the patient as changed", body = PatientResponse, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON or id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not change patients"),
        (status = 404, description = "no such patient (or not yours)"),
        (status = 409, description = "another patient has the new e-mail address (`email-taken`) or a new identifier (`identifier-taken`)"),
        (status = 412, description = "stale If-Match"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid field"),
        (status = 428, description = "If-Match missing"),
    )
)]
async fn patch_patient(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(patient_id): Path<Uuid>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<Json<PatchPatientBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Admin])?;
    let IfMatch(expected) = if_match?;
    let Json(body) = body?;
    let date = body
        .birth_date
        .as_deref()
        .map(|d| birth_date("birthDate", d))
        .transpose();
    staff_sets_identifiers(&caller, body.identifiers.is_some())?;
    claims_own_email(&caller, body.email.as_ref().and_then(Option::as_deref))?;
    let identifiers = body
        .identifiers
        .as_deref()
        .and_then(identifiers_problem)
        .map(|e| FieldError::new("identifiers", e));
    let birth_date = match (body.validate(), date, identifiers) {
        (Ok(()), Ok(date), None) => date,
        (Ok(()), date, identifiers) => {
            return Err(ApiError::Validation(
                date.err().into_iter().chain(identifiers).collect(),
            ));
        }
        (Err(report), date, identifiers) => return Err(with(validation(report, date.err()), identifiers)),
    };
    let patch = PatientPatch {
        given_name: body.given_name,
        family_name: body.family_name,
        birth_date,
        sex: body.sex,
        email: body.email,
        phone: body.phone,
        identifiers: body.identifiers,
    };
    let draft = audit.draft(&caller, StatusCode::OK);
    let (patient, changed) = state.patients.patch(patient_id, expected, patch, &draft).await?;
    let response = PatientResponse::from(patient);
    let response = (patient_headers(&response, false), axum::Json(response)).into_response();
    // An unchanged patient wrote no event with a change: the audit layer records the request as a read.
    Ok(mark_recorded(response, changed))
}
