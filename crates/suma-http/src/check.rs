//! What an HTTP check expects of one answer, and whether an answer meets it: the judge shared by the
//! runbooks' `http.check` and the deploy hooks, so "the service answered as expected" means one thing.

use std::time::Duration;

use crate::{HttpError, Response};

/// What a check expects: a status, optionally a piece of the body and a latency ceiling.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub status: u16,
    /// Text the body must contain (JSON bodies are searched in their compact form).
    pub body_contains: Option<String>,
    pub max_latency: Option<Duration>,
}

impl Default for Expectation {
    fn default() -> Self {
        Self {
            status: 200,
            body_contains: None,
            max_latency: None,
        }
    }
}

impl Expectation {
    /// `None` when `answer` meets the expectation, else what is wrong with it, in a few words.
    pub fn problem(&self, answer: &Result<Response, HttpError>) -> Option<String> {
        let response = match answer {
            Ok(response) => response,
            Err(e) => return Some(format!("failed: {}", e.reason)),
        };
        if response.status != self.status {
            return Some(format!("answered {} (expected {})", response.status, self.status));
        }
        if let Some(needle) = &self.body_contains {
            let body = match (&response.json, &response.text) {
                (Some(json), _) => json.to_string(),
                (None, Some(text)) => text.clone(),
                (None, None) => String::new(),
            };
            if !body.contains(needle.as_str()) {
                return Some(format!("answered {} without `{needle}` in its body", response.status));
            }
        }
        if let Some(max) = self.max_latency {
            if response.latency > max {
                return Some(format!(
                    "answered in {} ms, over {} ms",
                    response.latency.as_millis(),
                    max.as_millis()
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn answer(
        status: u16,
        json: Option<serde_json::Value>,
        text: Option<&str>,
        ms: u64,
    ) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: BTreeMap::new(),
            json,
            text: text.map(str::to_owned),
            latency: Duration::from_millis(ms),
        })
    }

    #[test]
    fn an_answer_meets_the_status_the_body_and_the_latency_or_says_which_it_missed() {
        let strict = Expectation {
            status: 200,
            body_contains: Some("\"status\":\"ok\"".to_owned()),
            max_latency: Some(Duration::from_millis(300)),
        };
        let ok = Some(serde_json::json!({"status": "ok"}));
        let refused = Err(HttpError {
            method: "GET".into(),
            url: "http://x/health".into(),
            reason: "connection failed: refused".into(),
        });
        let cases: [(Result<Response, HttpError>, Option<&str>); 6] = [
            (answer(200, ok.clone(), None, 20), None),
            (answer(503, ok.clone(), None, 20), Some("answered 503 (expected 200)")),
            (
                answer(200, Some(serde_json::json!({"status": "degraded"})), None, 20),
                Some("without `\"status\":\"ok\"`"),
            ),
            (answer(200, None, Some("status ok"), 20), Some("without")),
            (answer(200, ok, None, 900), Some("900 ms, over 300 ms")),
            (refused, Some("failed: connection failed: refused")),
        ];
        for (given, expected) in cases {
            let problem = strict.problem(&given);
            match expected {
                None => assert_eq!(problem, None),
                Some(needle) => assert!(problem.as_deref().is_some_and(|p| p.contains(needle)), "{problem:?}"),
            }
        }
        assert_eq!(Expectation::default().problem(&answer(200, None, None, 5000)), None);
    }
}
