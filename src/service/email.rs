//! E-mail to patients, sent by the relay: "booking confirmed" (`booking.created`), "reminder"
//! (`booking.reminder`) and "results ready" (`result.released`), from the templates in `templates/email/`.
//!
//! A mail says that something happened and where to look, never a clinical value: the templates have no
//! placeholder for one, and the only fields filled in are the lab's name, the patient's given name, the
//! site, the slot's local time and the number of tests. The e-mail channel is an outbox like a webhook's
//! ([`EMAIL_CHANNEL`]): queued in the stream's checkpoint transaction, sent per patient in order, retried
//! with the webhooks' backoff for as long, each attempt logged. An SMTP 5xx is permanent (not retried), a
//! 4xx or a connection failure is retried. The `Message-ID` is the event's id, as `webhook-id` is for a
//! webhook, so a retry after a crash is recognisably the same mail.

use std::{fmt, time::Duration};

use crate::{
    domain::{
        event::{DomainEvent, EventType},
        timefmt,
        webhook::{EMAIL_CHANNEL, Webhook},
    },
    store::{Store, StoreError},
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use time::{OffsetDateTime, macros::format_description};

/// The templates: first line the subject, the rest the body.
const BOOKING_CONFIRMED: &str = include_str!("../../templates/email/booking-confirmed.txt");
const BOOKING_REMINDER: &str = include_str!("../../templates/email/booking-reminder.txt");
const RESULTS_READY: &str = include_str!("../../templates/email/results-ready.txt");

/// Where and as whom e-mail is sent.
#[derive(Clone)]
pub struct EmailSettings {
    /// The SMTP server (`MEDBOOK_SMTP_URL`: `smtps://user:pass@host:465`, `smtp://host:587?tls=required`,
    /// or plain `smtp://host:25` on loopback in development).
    pub smtp_url: String,
    /// The sender (`MEDBOOK_EMAIL_FROM`, `Lab <lab@example.org>`).
    pub from: String,
    /// The lab's name, signed under each mail (`MEDBOOK_LAB_NAME`).
    pub lab_name: String,
    /// At most one "results ready" mail per booking within this time (`MEDBOOK_EMAIL_RESULTS_QUIET_S`,
    /// default 3 600): tests released together get one mail, a test released later within it is announced
    /// when it ends.
    pub results_quiet: Duration,
}

impl fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry the SMTP password.
        f.debug_struct("EmailSettings")
            .field("from", &self.from)
            .field("lab_name", &self.lab_name)
            .field("results_quiet", &self.results_quiet)
            .finish_non_exhaustive()
    }
}

/// How one mail went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mailed {
    /// The server accepted it, with this reply code.
    Sent(u16),
    /// Nothing to send, and why.
    Skipped(String),
    /// Not yet: to be sent at this instant (the booking's quiet period ends then), and why.
    Later(OffsetDateTime, String),
    /// It failed: the server's reply code if it answered, what went wrong, and whether trying again can help.
    Failed {
        /// The SMTP reply code.
        code: Option<u16>,
        /// What went wrong.
        error: String,
        /// A 5xx reply or an address the server cannot take: no retry.
        permanent: bool,
    },
}

/// Sends the patients' mails.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    lab: String,
    quiet: Duration,
}

/// What composing a mail came to.
enum Composed {
    Mail(Box<Message>),
    Skip(String),
    Later(OffsetDateTime, String),
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `settings`, each SMTP exchange bounded by `timeout`.
    ///
    /// # Errors
    /// A URL or sender that cannot be used, named.
    pub fn new(settings: &EmailSettings, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("MEDBOOK_EMAIL_FROM is not an address ({e})"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            .map_err(|e| format!("MEDBOOK_SMTP_URL cannot be used ({e})"))?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            transport,
            from,
            lab: settings.lab_name.clone(),
            quiet: settings.results_quiet,
        })
    }

    /// The e-mail channel, as the relay's outbox loop treats it: a webhook with id [`EMAIL_CHANNEL`] that
    /// wants the three event types mails are sent for.
    pub fn channel() -> Webhook {
        Webhook {
            id: EMAIL_CHANNEL,
            url: "smtp:".into(),
            types: vec![
                EventType::BookingCreated,
                EventType::BookingReminder,
                EventType::ResultReleased,
            ],
            description: "e-mail to patients".into(),
            enabled: true,
            disabled_reason: None,
            created_at: String::new(),
            failing_since: None,
            secret: String::new(),
            version: 0,
        }
    }

    /// Whether `event` gets a mail: one of the three types, about a patient.
    pub fn wants(event: &DomainEvent) -> bool {
        event.patient_id.is_some() && Self::channel().wants(event)
    }

    /// Sends the mail of `event`: reads the patient (and the site, for its local time) and sends it.
    pub async fn send(&self, store: &Store, event: &DomainEvent) -> Mailed {
        match self.compose(store, event).await {
            Ok(Composed::Mail(message)) => self.deliver(*message).await,
            Ok(Composed::Skip(why)) => Mailed::Skipped(why),
            Ok(Composed::Later(at, why)) => Mailed::Later(at, why),
            Err(e) => Mailed::Failed {
                code: None,
                error: format!("reading what the mail needs failed: {e}"),
                permanent: false,
            },
        }
    }

    /// Records, after a "results ready" mail was accepted, that it went out (the quiet period starts).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn sent(&self, store: &Store, event: &DomainEvent) -> Result<(), StoreError> {
        if let (EventType::ResultReleased, Some(patient), Some(booking)) =
            (event.kind, event.patient_id, event.booking_id)
        {
            let now = OffsetDateTime::now_utc();
            store
                .note_results_mailed(patient, booking, &timefmt::instant(now), now.unix_timestamp())
                .await?;
        }
        Ok(())
    }

    async fn compose(&self, store: &Store, event: &DomainEvent) -> Result<Composed, StoreError> {
        let Some(patient_id) = event.patient_id else {
            return Ok(Composed::Skip("the event has no patient".into()));
        };
        let Some(patient) = store.get_patient(patient_id).await? else {
            return Ok(Composed::Skip("the patient is gone".into()));
        };
        let Some(address) = patient.email.as_deref() else {
            return Ok(Composed::Skip("the patient has no e-mail address".into()));
        };
        let Ok(to) = format!("{} <{address}>", quoted(&patient.given_name, &patient.family_name)).parse::<Mailbox>()
        else {
            return Ok(Composed::Skip(format!(
                "the patient's address <{address}> cannot be used"
            )));
        };
        let text = |key: &str| event.data.get(key).cloned();
        let mut fields = vec![("lab", self.lab.clone()), ("given_name", patient.given_name.clone())];
        let template = match event.kind {
            EventType::BookingCreated | EventType::BookingReminder => {
                let slot = text("slotStart").as_deref().and_then(timefmt::parse_instant);
                if slot.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
                    // A relay that was down (or read old stream records) does not announce a past visit.
                    return Ok(Composed::Skip("the slot has passed".into()));
                }
                let site_code = text("site").unwrap_or_default();
                let site = store.site(&site_code).await?;
                let when = slot
                    .map(|at| match &site {
                        Some(site) => local_when(at, site.offset_at(at), &site.definition.time_zone),
                        None => local_when(at, 0, "UTC"),
                    })
                    .unwrap_or_default();
                fields.push(("site", site.map_or(site_code, |s| s.definition.name)));
                fields.push(("when", when));
                let tests = text("tests").and_then(|t| t.parse::<u32>().ok()).unwrap_or(1);
                fields.push(("tests", tests.to_string()));
                if event.kind == EventType::BookingCreated {
                    BOOKING_CONFIRMED
                } else {
                    BOOKING_REMINDER
                }
            }
            EventType::ResultReleased => {
                if let Some(booking) = event.booking_id
                    && let Some(last) = store.results_mailed_at(patient_id, booking).await?
                    && let Some(last) = timefmt::parse_instant(&last)
                {
                    let released = timefmt::parse_instant(&event.occurred_at).unwrap_or(last);
                    let sent = timefmt::instant(last);
                    if last >= released {
                        // The mail that went out after this release announced it too.
                        return Ok(Composed::Skip(format!("announced by the results-ready mail of {sent}")));
                    }
                    let ends = last + self.quiet;
                    if OffsetDateTime::now_utc() < ends {
                        return Ok(Composed::Later(
                            ends,
                            format!(
                                "a results-ready mail for this booking went out at {sent}: this one waits for the quiet period to end"
                            ),
                        ));
                    }
                }
                RESULTS_READY
            }
            other => return Ok(Composed::Skip(format!("no mail is sent for {}", other.name()))),
        };
        let (subject, body) = render(template, &fields);
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@medbook>", event.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_or_else(
                |e| Composed::Skip(format!("the mail cannot be built: {e}")),
                |m| Composed::Mail(Box::new(m)),
            ))
    }

    async fn deliver(&self, message: Message) -> Mailed {
        match self.transport.send(message).await {
            Ok(response) => Mailed::Sent(response.code().into()),
            Err(e) => {
                use std::error::Error as _;
                let mut error = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    error.push_str(": ");
                    error.push_str(&s.to_string());
                    source = s.source();
                }
                Mailed::Failed {
                    code: e.status().map(u16::from),
                    error: error.chars().take(500).collect(),
                    permanent: e.is_permanent(),
                }
            }
        }
    }
}

/// The display name of a mailbox, quoted.
fn quoted(given: &str, family: &str) -> String {
    let name: String = format!("{given} {family}")
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '<' | '>' | '\r' | '\n'))
        .collect();
    format!("\"{}\"", name.trim())
}

/// `Tuesday, 1 December 2026, 09:15 (Europe/Berlin)`: `at` in the site's local time.
fn local_when(at: OffsetDateTime, offset_seconds: i32, zone: &str) -> String {
    let offset = time::UtcOffset::from_whole_seconds(offset_seconds).unwrap_or(time::UtcOffset::UTC);
    let local = at.checked_to_offset(offset).unwrap_or(at);
    let text = local
        .format(format_description!(
            "[weekday], [day padding:none] [month repr:long] [year], [hour]:[minute]"
        ))
        .unwrap_or_default();
    format!("{text} ({zone})")
}

/// Fills `{name}` placeholders of `template` from `fields`; the first line is the subject.
pub fn render(template: &str, fields: &[(&str, String)]) -> (String, String) {
    let mut text = template.to_owned();
    for (name, value) in fields {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    let (subject, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    (subject.trim().to_owned(), body.trim_start_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACEHOLDERS: [&str; 5] = ["lab", "given_name", "tests", "site", "when"];

    #[test]
    fn templates_fill_every_placeholder_and_have_a_subject() {
        let fields: Vec<(&str, String)> = PLACEHOLDERS.iter().map(|p| (*p, format!("<{p}>"))).collect();
        for template in [BOOKING_CONFIRMED, BOOKING_REMINDER, RESULTS_READY] {
            let (subject, body) = render(template, &fields);
            assert!(!subject.is_empty() && !subject.contains('{'), "{subject}");
            assert!(
                !body.contains('{') && !body.contains('}'),
                "an unknown placeholder in:\n{body}"
            );
            assert!(body.contains("<given_name>"), "{body}");
        }
    }

    #[test]
    fn local_time_follows_the_sites_offset() {
        let at = timefmt::parse_instant("2026-12-01T08:15:00Z").expect("an instant");
        assert_eq!(
            local_when(at, 3600, "Europe/Berlin"),
            "Tuesday, 1 December 2026, 09:15 (Europe/Berlin)"
        );
    }

    #[test]
    fn display_names_cannot_break_out_of_their_quotes() {
        assert_eq!(quoted("A\"<b>", "C\r\nD"), "\"Ab CD\"");
    }
}
