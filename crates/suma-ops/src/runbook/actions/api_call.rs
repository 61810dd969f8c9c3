//! `aws.call`: one AWS API operation by name, for what no built-in action reads. Validation has judged
//! the operation already (a read, or a change the runbook allows with `mutating_aws_calls: true`); the
//! judgement is made again here, so a run never calls what its runbook could not have been validated
//! with. The answer, or the part `select` keeps, is the step's `response` output.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{arg, outputs, required, structured, LiveActions};
use crate::aws::api_call::{self, Access};
use crate::runbook::engine::{ActionError, Done};
use crate::runbook::selector;

impl LiveActions<'_> {
    pub(super) async fn aws_call(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        let service = api_call::service(required(args, "service")?).map_err(ActionError::new)?;
        let operation = required(args, "operation")?;
        api_call::check_operation(operation).map_err(ActionError::new)?;
        match api_call::access(service.name, operation) {
            Access::SecretBearing => {
                return Err(ActionError::new(format!(
                    "`{} {operation}` answers with secret material, which the journal would keep; it is never called",
                    service.name
                )))
            }
            Access::Mutating if !self.mutating_aws_calls => {
                return Err(ActionError::new(format!(
                    "`{} {operation}` changes things, and runbook `{}` does not say `mutating_aws_calls: true`",
                    service.name, self.runbook
                )))
            }
            Access::Mutating | Access::ReadOnly => {}
        }
        let input: Value = match arg(args, "input") {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| ActionError::new(format!("`input` is not a map of parameters: {e}")))?,
            None => Value::Null,
        };
        let path = arg(args, "select")
            .map(selector::path)
            .transpose()
            .map_err(|e| ActionError::new(format!("`select`: {e}")))?;
        let region = match arg(args, "region") {
            Some("dr") => &self.env.dr_region,
            _ => &self.env.primary_region,
        };
        let answer = self.session.api_caller(region).call(service, operation, &input).await?;
        let response = match path {
            Some(path) => selector::select(&answer, &path)
                .map_err(|e| ActionError::new(format!("`select` of the `{operation}` answer: {e}")))?,
            None => answer,
        };
        Ok(outputs([("response", structured(response))]))
    }
}
