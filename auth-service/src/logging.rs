//! The service's log lines: one JSON object a line, in the shape tracing-subscriber's JSON format with
//! `flatten_event` and the current span gives (`timestamp`, `level`, the event's fields, `target`, and
//! `span` with the span's fields and `name`), written straight into the line.
//!
//! Why not tracing-subscriber's own JSON format: it keeps a span's fields as JSON text built through a map
//! of `serde_json::Value`s and, for every event inside the span, parses that text back into such a map to
//! serialize it again; the event's fields go through a map of values too. At one request line per request
//! that was most of the request log's cost (perf on `/me` with logs at `info`: a fifth of the service's
//! CPU in the log layer). Here a span's fields are escaped into a JSON object once, when the span opens
//! ([`JsonSpanFields`]), and copied into each line as they are; an event's fields are escaped into the
//! line as they are visited.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats an event as one JSON line; spans' fields must be stored by [`JsonSpanFields`] (the type says
/// so).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

/// Stores a span's fields as the text of a JSON object (`{"method":"GET","path":"/me"}`).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut members = FieldWriter::new(&mut writer, false);
        fields.record(&mut members);
        members.result?;
        writer.write_char('}')
    }

    /// Fields recorded after the span opened join the object (the default would append a second one).
    fn add_fields(&self, current: &mut FormattedFields<Self>, fields: &Record<'_>) -> fmt::Result {
        let had_members = !object_members(&current.fields).is_empty();
        if current.fields.ends_with('}') {
            current.fields.pop();
        } else {
            current.fields.clear();
            current.fields.push('{');
        }
        let mut writer = current.as_writer();
        let mut members = FieldWriter::new(&mut writer, had_members);
        fields.record(&mut members);
        members.result?;
        current.fields.push('}');
        Ok(())
    }
}

impl<S> FormatEvent<S, JsonSpanFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events forwarded from the `log` crate carry their real target in fields; this reads it back.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", metadata.level())?;
        let mut fields = FieldWriter::new(&mut writer, true);
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_string(&mut writer, metadata.target())?;
        if let Some(span) = ctx.lookup_current() {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(stored) = extensions.get::<FormattedFields<JsonSpanFields>>() {
                let inner = object_members(&stored.fields);
                if !inner.is_empty() {
                    writer.write_str(inner)?;
                    writer.write_char(',')?;
                }
            }
            writer.write_str("\"name\":")?;
            write_json_string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// The members of a JSON object's text (`{"a":1}` → `"a":1`); empty for `{}` or nothing.
fn object_members(object: &str) -> &str {
    let object = object.trim();
    object
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .map_or("", str::trim)
}

/// Writes each field as `"name":value`, separated by commas, into a line or a span's object.
struct FieldWriter<'a, 'w> {
    out: &'a mut Writer<'w>,
    /// Whether a member precedes the next one (it then needs a comma first).
    after_member: bool,
    /// The first write error; `Visit` methods cannot return one.
    result: fmt::Result,
}

impl<'a, 'w> FieldWriter<'a, 'w> {
    fn new(out: &'a mut Writer<'w>, after_member: bool) -> Self {
        FieldWriter {
            out,
            after_member,
            result: Ok(()),
        }
    }

    /// The field's JSON name, or `None` for the `log.*` metadata [`NormalizeEvent`] already used.
    fn key(field: &Field) -> Option<&'static str> {
        let name = field.name();
        if name.starts_with("log.") {
            return None;
        }
        Some(name.strip_prefix("r#").unwrap_or(name))
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let Some(key) = Self::key(field) else { return };
        let comma = std::mem::replace(&mut self.after_member, true);
        self.result = (|| {
            if comma {
                self.out.write_char(',')?;
            }
            write_json_string(self.out, key)?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, |out| write_json_string(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes them as null too.
        self.write(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.write(field, |out| {
            out.write_char('[')?;
            for (i, byte) in value.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write!(out, "{byte}")?;
            }
            out.write_char(']')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Formatted straight through the escaping, with no string of its own: `latency = %…` is in every
        // request line.
        self.write(field, |out| {
            out.write_char('"')?;
            write!(JsonEscaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// Writes `text` as a JSON string: quotes, backslashes and control characters escaped (RFC 8259 §7).
fn write_json_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct JsonEscaped<W>(W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let out = &mut self.0;
        let mut clean_from = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Only ASCII bytes are escaped, so `at` is always a character boundary.
            out.write_str(&text[clean_from..at])?;
            if escape.is_empty() {
                write!(out, "\\u{byte:04x}")?;
            } else {
                out.write_str(escape)?;
            }
            clean_from = at + 1;
        }
        out.write_str(&text[clean_from..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The lines `log` writes through the service's format, parsed.
    fn lines(log: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonSpanFields)
            .event_format(JsonLines)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect()
    }

    #[test]
    fn a_request_line_has_the_shape_of_tracing_subscribers_json_format() {
        let logged = lines(|| {
            let span = tracing::info_span!("request", method = "GET", path = "/me", request_id = "r-1");
            let _entered = span.enter();
            tracing::info!(latency = %"0 ms", status = 200u64, "finished processing request");
        });
        let line = &logged[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "finished processing request");
        assert_eq!(line["latency"], "0 ms");
        assert_eq!(line["status"], 200);
        assert_eq!(line["target"], "auth_service::logging::tests");
        assert_eq!(
            line["span"],
            json!({"method": "GET", "path": "/me", "request_id": "r-1", "name": "request"})
        );
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() == "2026-12-07T04:02:44.182933Z".len() && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    }

    #[test]
    fn values_of_every_kind_are_valid_json() {
        let logged = lines(|| {
            let error = io::Error::other("disk \"full\"");
            tracing::warn!(
                text = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓",
                negative = -3i64,
                flag = true,
                ratio = 0.5f64,
                not_a_number = f64::NAN,
                r#type = "raw name",
                debugged = ?vec!["a\"b"],
                error = &error as &dyn std::error::Error,
                "message with \"quotes\""
            );
        });
        let line = &logged[0];
        assert_eq!(line["text"], "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓");
        assert_eq!(line["negative"], -3);
        assert_eq!(line["flag"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["not_a_number"], Value::Null);
        assert_eq!(line["type"], "raw name");
        assert_eq!(line["debugged"], "[\"a\\\"b\"]");
        assert_eq!(line["error"], "disk \"full\"");
        assert_eq!(line["message"], "message with \"quotes\"");
        assert!(line.get("span").is_none(), "no span was entered: {line}");
    }

    #[test]
    fn a_span_without_fields_still_names_itself() {
        let logged = lines(|| {
            let span = tracing::info_span!("startup");
            let _entered = span.enter();
            tracing::info!("ready");
        });
        assert_eq!(logged[0]["span"], json!({"name": "startup"}));
    }

    #[test]
    fn fields_recorded_later_join_the_spans_object() {
        let logged = lines(|| {
            let span = tracing::info_span!("request", path = "/me", account = tracing::field::Empty);
            let _entered = span.enter();
            span.record("account", "a-1");
            tracing::info!("done");
        });
        assert_eq!(
            logged[0]["span"],
            json!({"path": "/me", "account": "a-1", "name": "request"})
        );
        let logged = lines(|| {
            let span = tracing::info_span!("job", attempt = tracing::field::Empty);
            let _entered = span.enter();
            span.record("attempt", 2u64);
            tracing::info!("done");
        });
        assert_eq!(logged[0]["span"], json!({"attempt": 2, "name": "job"}));
    }

    #[test]
    fn object_members_take_the_braces_off() {
        assert_eq!(object_members("{\"a\":1,\"b\":\"}\"}"), "\"a\":1,\"b\":\"}\"");
        assert_eq!(object_members("{}"), "");
        assert_eq!(object_members(""), "");
    }
}
