//! Read-only checks: a SQL query against the environment's database, an HTTP check of a URL.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{arg, duration_arg, outputs, required, structured, LiveActions, POLL};
use crate::config::SecretKind;
use crate::runbook::engine::{ActionError, Done, Outputs};

/// The rows `sql.query` keeps as `records` for selectors (`records[0].email`): a check's query reads a
/// few rows; more belongs in `auth.export-audit` or a report, not in a journaled output.
const MAX_RECORDS: usize = 100;

/// A result row with its columns in the query's order (`value` is the first column as written).
struct OrderedRow(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedRow {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> serde::de::Visitor<'de> for Columns {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a row as a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedRow, A::Error> {
                let mut columns = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    columns.push(entry);
                }
                Ok(OrderedRow(columns))
            }
        }
        deserializer.deserialize_map(Columns)
    }
}

impl LiveActions<'_> {
    pub(super) async fn sql_query(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        let query = required(args, "query")?.trim().trim_end_matches(';');
        if query.contains(';') {
            return Err(ActionError::new("`query` must be a single statement"));
        }
        let secret = self.secret(arg(args, "secret"), SecretKind::DbPassword)?;
        let value = self.current_value(&secret.id).await?;
        let mut credentials = crate::secrets::kinds::DbCredentials::parse(&value, &format!("secret `{}`", secret.id))?;
        if let Some(host) = arg(args, "host") {
            // `host:port` as the database actions' `host` output gives it; a bare name keeps the port.
            match host
                .rsplit_once(':')
                .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)))
            {
                Some((name, port)) => {
                    credentials.host = name.to_owned();
                    credentials.port = port;
                }
                None => credentials.host = host.to_owned(),
            }
        }
        let mut conn = credentials.connect().await?;
        // The session refuses writes whatever the query says.
        sqlx::raw_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| ActionError::new(format!("cannot make the session read-only: {e}")))?;
        let wrapped = format!("SELECT coalesce(json_agg(row_to_json(q)), '[]')::text FROM ({query}) AS q");
        let (text,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(wrapped))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| ActionError::new(format!("the query failed on {}: {e}", credentials.host)))?;
        let rows: Vec<OrderedRow> = serde_json::from_str(&text)?;
        let records: Vec<Value> = serde_json::from_str(&text)?;
        let mut out = Outputs::from([
            ("rows".to_owned(), json!(rows.len())),
            (
                "records".to_owned(),
                structured(Value::Array(records.into_iter().take(MAX_RECORDS).collect())),
            ),
        ]);
        if let Some(OrderedRow(first)) = rows.first() {
            out.insert(
                "columns".to_owned(),
                json!(first.iter().map(|(k, _)| k).collect::<Vec<_>>()),
            );
            out.insert(
                "value".to_owned(),
                first.first().map_or(Value::Null, |(_, v)| v.clone()),
            );
            for (k, v) in first {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Ok(out.into())
    }

    pub(super) async fn http_check(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        let url = required(args, "url")?;
        let expect = suma_http::check::Expectation {
            status: arg(args, "expect_status").map_or(Ok(200), str::parse)?,
            body_contains: arg(args, "body_contains").map(str::to_owned),
            max_latency: arg(args, "max_latency")
                .map(|_| duration_arg(args, "max_latency", POLL))
                .transpose()?,
        };
        let attempts: u32 = arg(args, "attempts").map_or(Ok(1), str::parse)?;
        let interval = duration_arg(args, "interval", POLL)?;
        let require = arg(args, "require") != Some("false");
        let http = suma_http::ServiceClient::new(Duration::from_secs(10));
        let mut last = String::new();
        let mut status = Value::Null;
        let mut latency = 0u128;
        let mut body = Value::Null;
        for attempt in 1..=attempts.max(1) {
            let answer = http.get(url).await;
            if let Ok(response) = &answer {
                latency = response.latency.as_millis();
                status = json!(response.status);
                body = response.json.clone().map_or(Value::Null, structured);
            }
            match expect.problem(&answer) {
                None => {
                    return Ok(outputs([
                        ("status", status),
                        ("latency_ms", json!(latency)),
                        ("attempts", json!(attempt)),
                        ("json", body),
                    ]))
                }
                Some(problem) => last = problem,
            }
            if attempt < attempts {
                self.ctx
                    .reporter
                    .live(&format!("GET {url} {last}; try {}/{attempts}", attempt + 1));
                tokio::time::sleep(interval).await;
            }
        }
        if require {
            return Err(ActionError::new(format!(
                "GET {url} {last} after {attempts} attempt(s)"
            )));
        }
        Ok(outputs([
            ("status", status),
            ("latency_ms", json!(latency)),
            ("attempts", json!(attempts.max(1))),
            ("json", body),
        ]))
    }
}
