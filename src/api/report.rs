//! `GET …/bookings/{bookingId}/report.pdf`: the printable laboratory report of one booking.
//!
//! The report is laid out as lines of text cells and drawn with krilla into A4 pages, with DejaVu Sans
//! embedded (subset to the glyphs used), so names such as "Zoë Ångström-Łukasik" print as written. What it
//! shows follows the same release rule as every other patient-facing view: a patient's report holds released
//! results only, and names the others as not released yet.

use std::sync::OnceLock;

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use krilla::{
    Document,
    color::rgb,
    geom::{PathBuilder, Point},
    num::NormalizedF32,
    page::PageSettings,
    paint::{Fill, Stroke},
    text::{Font, TextDirection},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{AppState, error::ApiError, extract::Path};
use crate::{
    auth::{Caller, Role},
    domain::{
        booking::{LabResult, NoteVisibility, ResultStatus},
        patient::Sex,
        release::Release,
        test_type::{AgeUnit, Flag, ReferenceRange},
        timefmt,
    },
    service::{ServiceError, bookings::BookingExport},
};

/// The media type of the report.
pub const PDF: &str = "application/pdf";

/// Report routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(booking_report))
}

/// One booking's laboratory report as a PDF (the patient themself once a result is released; lab, doctor,
/// admin): the lab, the patient (name, birth date, sex), the accession number, and each test with its values,
/// units, the range applied, flags (marked), status, verifier, release time and the notes meant for the
/// patient. A patient's report holds released results only. The tree and the patient, issued together.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/report.pdf",
    tag = "bookings",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id"), ("bookingId" = Uuid, Path, description = "booking id")),
    responses(
        (status = 200, description = "the report (PDF)", content_type = "application/pdf", body = String),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no such booking (or not yours)"),
        (status = 409, description = "a patient's booking with no result released yet (`not-released`)"),
    )
)]
async fn booking_report(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Doctor, Role::Admin])?;
    let export = state.bookings.export(patient_id, booking_id).await?;
    let patient_view = caller.role == Role::Patient;
    let releases = |r: &LabResult| state.results.release_of(r);
    if patient_view && !export.tree.results.values().any(|r| releases(r).is_released()) {
        return Err(ServiceError::conflict(
            "not-released",
            "no result of this booking is released yet; the report follows once one is",
        )
        .into());
    }
    let lines = lines(&export, &state.lab_name, patient_view, releases);
    let footer = format!(
        "{} · {} {} · printed {}",
        state.lab_name,
        export.patient.given_name,
        export.patient.family_name,
        timefmt::second(time::OffsetDateTime::now_utc())
    );
    let pdf = tokio::task::spawn_blocking(move || render(&lines, &footer))
        .await
        .map_err(|e| ApiError::from(ServiceError::Internal(format!("report task: {e}"))))?
        .map_err(|e| ApiError::from(ServiceError::Internal(format!("report: {e}"))))?;
    let name = export
        .tree
        .booking
        .accession
        .clone()
        .unwrap_or_else(|| export.tree.booking.id.to_string());
    let mut response = pdf.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PDF));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"report-{name}.pdf\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// How a cell is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Regular,
    Bold,
    /// A flagged value: bold and red.
    Flagged,
    /// Secondary text: grey.
    Muted,
}

/// One piece of text at a horizontal position.
#[derive(Debug, Clone, PartialEq)]
struct Cell {
    x: f32,
    text: String,
    style: Style,
    size: f32,
}

/// One line of the report: its cells, its height, and whether a rule is drawn under it.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    cells: Vec<Cell>,
    height: f32,
    rule: bool,
}

const LEFT: f32 = 50.0;
const BODY: f32 = 9.5;
/// Columns of a value row: analyte, value, unit, reference range, flag.
const COLUMNS: [f32; 5] = [LEFT + 8.0, 230.0, 300.0, 370.0, 520.0];

fn line(cells: Vec<Cell>, height: f32) -> Line {
    Line {
        cells,
        height,
        rule: false,
    }
}

fn cell(x: f32, text: impl Into<String>, style: Style, size: f32) -> Cell {
    Cell {
        x,
        text: text.into(),
        style,
        size,
    }
}

/// Cuts `text` to `max` characters (a cell has a fixed width).
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut current = String::new();
        for word in paragraph.split_whitespace() {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&fit(word, width));
        }
        lines.push(current);
    }
    lines
}

fn number(value: f64) -> String {
    let text = format!("{value}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// The range as printed: `11.6–15.0 (female, 18 a and older)`.
fn range_text(range: &ReferenceRange) -> String {
    let bounds = match (range.low, range.high) {
        (Some(l), Some(h)) => format!("{}–{}", number(l), number(h)),
        (Some(l), None) => format!("≥ {}", number(l)),
        (None, Some(h)) => format!("≤ {}", number(h)),
        (None, None) => String::new(),
    };
    let unit = |u: AgeUnit| match u {
        AgeUnit::Days => "d",
        AgeUnit::Months => "mo",
        AgeUnit::Years => "a",
    };
    let mut whom = Vec::new();
    if let Some(sex) = range.sex {
        whom.push(format!("{sex:?}").to_lowercase());
    }
    match (range.age_from, range.age_to) {
        (Some(f), Some(t)) => whom.push(format!("{} {}–<{} {}", f.value, unit(f.unit), t.value, unit(t.unit))),
        (Some(f), None) => whom.push(format!("≥ {} {}", f.value, unit(f.unit))),
        (None, Some(t)) => whom.push(format!("< {} {}", t.value, unit(t.unit))),
        (None, None) => {}
    }
    if whom.is_empty() {
        bounds
    } else {
        format!("{bounds} ({})", whom.join(", "))
    }
}

fn status_text(result: &LabResult) -> &'static str {
    match (result.is_verified(), result.status) {
        (false, ResultStatus::Preliminary | ResultStatus::Final) => "preliminary (not verified)",
        (false, ResultStatus::Corrected) => "correction awaiting verification",
        (false, ResultStatus::Amended) => "amendment awaiting verification",
        (true, ResultStatus::Preliminary | ResultStatus::Final) => "final",
        (true, ResultStatus::Corrected) => "corrected",
        (true, ResultStatus::Amended) => "amended",
    }
}

/// The report's lines for `export` as `patient_view` (the patient's own) may see it.
fn lines(
    export: &BookingExport,
    lab_name: &str,
    patient_view: bool,
    release: impl Fn(&LabResult) -> Release,
) -> Vec<Line> {
    let BookingExport {
        patient,
        tree,
        test_types,
    } = export;
    let booking = &tree.booking;
    let mut out = vec![
        line(vec![cell(LEFT, lab_name, Style::Bold, 16.0)], 22.0),
        Line {
            rule: true,
            ..line(vec![cell(LEFT, "Laboratory report", Style::Muted, 11.0)], 20.0)
        },
    ];
    let sex = match patient.sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    };
    let facts = [
        ("Patient", format!("{} {}", patient.given_name, patient.family_name)),
        ("Born", timefmt::date(patient.birth_date)),
        ("Sex", sex.to_owned()),
        ("Accession", booking.accession.clone().unwrap_or_else(|| "—".to_owned())),
        ("Booking", booking.id.to_string()),
        ("Site", booking.site.clone()),
        (
            "Collected",
            booking
                .checked_in_at
                .clone()
                .unwrap_or_else(|| booking.slot_start.to_string()),
        ),
    ];
    for (label, value) in facts {
        out.push(line(
            vec![
                cell(LEFT, label, Style::Muted, BODY),
                cell(LEFT + 70.0, value, Style::Regular, BODY),
            ],
            13.0,
        ));
    }
    out.push(line(Vec::new(), 8.0));
    for test in &booking.tests {
        let test_type = test_types.get(&(test.test_type_code.clone(), test.test_type_version));
        let loinc = test_type.map_or(String::new(), |t| format!("  LOINC {}", t.definition.loinc));
        out.push(Line {
            rule: true,
            ..line(
                vec![
                    cell(LEFT, fit(&test.name, 50), Style::Bold, 11.0),
                    cell(LEFT + 300.0, loinc, Style::Muted, BODY),
                ],
                20.0,
            )
        });
        let Some(result) = tree.results.get(&test.id) else {
            out.push(line(vec![cell(LEFT + 8.0, "No result yet.", Style::Muted, BODY)], 14.0));
            continue;
        };
        let state = release(result);
        if patient_view && !state.is_released() {
            out.push(line(
                vec![cell(LEFT + 8.0, "Not released yet.", Style::Muted, BODY)],
                14.0,
            ));
            continue;
        }
        let mut status = format!("Status: {}", status_text(result));
        if let Some(v) = &result.verification {
            status.push_str(&format!(" · verified by {} at {}", v.verifier_id, v.verified_at));
        }
        out.push(line(vec![cell(LEFT + 8.0, status, Style::Regular, BODY)], 13.0));
        let released = match state {
            Release::Released { at } => format!("Released to the patient at {}", timefmt::instant(at)),
            Release::Withheld { .. } => "Not released to the patient".to_owned(),
        };
        out.push(line(vec![cell(LEFT + 8.0, released, Style::Muted, BODY)], 16.0));
        out.push(line(
            ["Analyte", "Value", "Unit", "Reference range", "Flag"]
                .iter()
                .zip(COLUMNS)
                .map(|(h, x)| cell(x, *h, Style::Muted, 8.5))
                .collect(),
            13.0,
        ));
        for value in &result.values {
            let name = test_type
                .and_then(|t| t.definition.analytes.iter().find(|a| a.code == value.analyte))
                .map_or_else(|| value.analyte.clone(), |a| a.name.clone());
            let flagged = value.flag != Flag::N;
            let (flag, style) = match value.flag {
                Flag::N => (String::new(), Style::Regular),
                other => (format!("{other:?} !"), Style::Flagged),
            };
            let mut flag = flag;
            if value.delta.is_some() {
                flag.push_str(if flag.is_empty() { "Δ" } else { " Δ" });
            }
            out.push(line(
                vec![
                    cell(COLUMNS[0], fit(&name, 30), Style::Regular, BODY),
                    cell(COLUMNS[1], number(value.value), style, BODY),
                    cell(COLUMNS[2], fit(&value.unit, 12), Style::Regular, BODY),
                    cell(
                        COLUMNS[3],
                        fit(&value.reference_range.as_ref().map(range_text).unwrap_or_default(), 28),
                        Style::Regular,
                        BODY,
                    ),
                    cell(
                        COLUMNS[4],
                        flag,
                        if flagged { Style::Flagged } else { Style::Regular },
                        BODY,
                    ),
                ],
                13.0,
            ));
        }
        let mut texts: Vec<(&str, String)> = Vec::new();
        if let Some(comment) = &result.comment {
            texts.push(("Lab comment", comment.clone()));
        }
        if let Some(review) = &result.review {
            texts.push((
                "Doctor's review",
                format!("{} ({}, {})", review.conclusion, review.reviewer_id, review.reviewed_at),
            ));
        }
        for note in tree.notes.get(&test.id).into_iter().flatten() {
            if note.visibility == NoteVisibility::Patient || !patient_view {
                let label = if note.visibility == NoteVisibility::Patient {
                    "Note"
                } else {
                    "Internal note"
                };
                texts.push((
                    label,
                    format!("{} ({}, {})", note.text, note.author_id, note.created_at),
                ));
            }
        }
        for (label, text) in texts {
            for (i, part) in wrap(&text, 90).into_iter().enumerate() {
                let label = if i == 0 { label } else { "" };
                out.push(line(
                    vec![
                        cell(LEFT + 8.0, label, Style::Muted, BODY),
                        cell(LEFT + 100.0, part, Style::Regular, BODY),
                    ],
                    13.0,
                ));
            }
        }
        out.push(line(Vec::new(), 8.0));
    }
    out.push(line(
        vec![cell(
            LEFT,
            "Flags: L low, H high, LL critically low, HH critically high (marked !); Δ a large change since the previous result.",
            Style::Muted,
            8.0,
        )],
        12.0,
    ));
    out
}

/// DejaVu Sans regular and bold, parsed once.
fn fonts() -> Option<&'static (Font, Font)> {
    static FONTS: OnceLock<Option<(Font, Font)>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Some((
                Font::new(dejavu::sans::regular().into(), 0)?,
                Font::new(dejavu::sans::bold().into(), 0)?,
            ))
        })
        .as_ref()
}

const PAGE: (f32, f32) = (595.0, 842.0);
const TOP: f32 = 60.0;
const BOTTOM: f32 = 790.0;

/// Draws `lines` onto A4 pages, `footer` and the page number at the foot of each.
fn render(lines: &[Line], footer: &str) -> Result<Vec<u8>, String> {
    let (regular, bold) = fonts().ok_or("the embedded font does not parse")?;
    let mut pages: Vec<Vec<&Line>> = vec![Vec::new()];
    let mut y = TOP;
    for line in lines {
        if y + line.height > BOTTOM && pages.last().is_some_and(|p| !p.is_empty()) {
            pages.push(Vec::new());
            y = TOP;
        }
        y += line.height;
        if let Some(page) = pages.last_mut() {
            page.push(line);
        }
    }
    let fill = |r, g, b| Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    };
    let count = pages.len();
    let mut document = Document::new();
    for (n, page_lines) in pages.into_iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE.0, PAGE.1).ok_or("page size")?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        let mut y = TOP;
        for line in page_lines {
            y += line.height;
            for c in &line.cells {
                let (font, color) = match c.style {
                    Style::Regular => (regular, (0, 0, 0)),
                    Style::Bold => (bold, (0, 0, 0)),
                    Style::Flagged => (bold, (180, 0, 0)),
                    Style::Muted => (regular, (90, 90, 90)),
                };
                surface.set_fill(Some(fill(color.0, color.1, color.2)));
                surface.draw_text(
                    Point::from_xy(c.x, y - 4.0),
                    font.clone(),
                    c.size,
                    &c.text,
                    false,
                    TextDirection::Auto,
                );
            }
            if line.rule {
                let mut path = PathBuilder::new();
                path.move_to(LEFT, y);
                path.line_to(PAGE.0 - LEFT, y);
                if let Some(path) = path.finish() {
                    surface.set_fill(None);
                    surface.set_stroke(Some(Stroke {
                        width: 0.5,
                        paint: rgb::Color::new(150, 150, 150).into(),
                        ..Stroke::default()
                    }));
                    surface.draw_path(&path);
                    surface.set_stroke(None);
                }
            }
        }
        surface.set_fill(Some(fill(90, 90, 90)));
        surface.draw_text(
            Point::from_xy(LEFT, PAGE.1 - 30.0),
            regular.clone(),
            7.5,
            &format!("{} · page {} of {count}", fit(footer, 110), n + 1),
            false,
            TextDirection::Auto,
        );
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_at_spaces_and_long_cells_are_cut() {
        assert_eq!(wrap("one two three four", 9), ["one two", "three", "four"]);
        assert_eq!(fit("Ångström-Łukasik", 8), "Ångströ…");
        assert_eq!(number(13.0), "13");
        assert_eq!(number(0.17), "0.17");
    }

    #[test]
    fn a_range_prints_its_bounds_and_whom_it_applies_to() {
        let range: ReferenceRange = serde_json::from_value(serde_json::json!(
            {"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 11.6, "high": 15.0}
        ))
        .unwrap();
        assert_eq!(range_text(&range), "11.6–15 (female, ≥ 18 a)");
        let child: ReferenceRange = serde_json::from_value(serde_json::json!(
            {"ageFrom": {"value": 1, "unit": "a"}, "ageTo": {"value": 6, "unit": "a"}, "high": 0.49}
        ))
        .unwrap();
        assert_eq!(range_text(&child), "≤ 0.49 (1 a–<6 a)");
    }

    #[test]
    fn many_lines_make_several_pages_each_with_its_footer() {
        let lines: Vec<Line> = (0..200)
            .map(|i| line(vec![cell(LEFT, format!("line {i}"), Style::Regular, BODY)], 13.0))
            .collect();
        let pdf = render(&lines, "lab").unwrap();
        let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
        assert!(text.contains("line 0") && text.contains("line 199"), "{text}");
        assert!(text.contains("page 1 of 4") && text.contains("page 4 of 4"), "{text}");
    }
}
