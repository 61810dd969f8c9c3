//! The `aws-sdk` implementation of [`crate::dynamodb`]'s trait.

#[allow(unused_imports)]
use crate::dynamodb::*;
use crate::{AwsError, AwsErrorKind};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update};
use std::collections::HashMap;

pub struct SdkLockTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl SdkLockTable {
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.to_owned(),
        }
    }

    /// The put of an operation's `op#ID` item, for a transaction or alone.
    /// A put of `item` as the environment's lock; the caller adds the condition that makes it safe.
    fn put_lock(&self, item: &LockItem) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&lock_key(&item.environment)))
            .item("holder", s(&item.holder))
            .item("fence", s(&item.fence))
            .item("operation_id", s(&item.operation_id))
            .item("operation_kind", s(&item.operation_kind))
            .item("operation_status", s(&item.operation_status))
            .item("acquired_at", n(item.acquired_at))
            .item("expires_at", n(item.expires_at))
            .item("operation", s(&item.operation))
    }

    fn operation_put(&self, op: &OperationItem, resource: &str) -> Result<Put, AwsError> {
        Put::builder()
            .table_name(&self.table)
            .item("pk", s(&op_key(&op.id)))
            .item("environment", s(&op.environment))
            .item("started_at", s(&op.started_at))
            .item("status", s(&op.status))
            .item("document", s(&op.document))
            .build()
            .map_err(|e| AwsError::new("DynamoDB", "PutItem", resource, AwsErrorKind::Other, e.to_string()))
    }

    /// An SDK error on the item `key` of this table.
    fn failed<E, R>(&self, operation: &'static str, key: &str, err: aws_sdk_dynamodb::error::SdkError<E, R>) -> AwsError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        AwsError::from_sdk("DynamoDB", operation, format!("{}/{key}", self.table), err)
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn lock_key(environment: &str) -> String {
    format!("lock#{environment}")
}

fn approval_key(operation_id: &str, step: &str) -> String {
    format!("approval#{operation_id}#{step}")
}

/// The attributes the table and [`OPERATIONS_INDEX`] are keyed by, all strings.
fn key_attributes() -> Result<Vec<aws_sdk_dynamodb::types::AttributeDefinition>, aws_sdk_dynamodb::error::BuildError> {
    use aws_sdk_dynamodb::types::{AttributeDefinition, ScalarAttributeType};
    ["pk", "environment", "started_at"]
        .into_iter()
        .map(|name| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        })
        .collect()
}

/// [`OPERATIONS_INDEX`]: partition key `environment`, sort key `started_at`, every attribute projected
/// (a listing reads whole documents).
fn operations_index() -> Result<aws_sdk_dynamodb::types::GlobalSecondaryIndex, aws_sdk_dynamodb::error::BuildError> {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType};
    GlobalSecondaryIndex::builder()
        .index_name(OPERATIONS_INDEX)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("environment")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("started_at")
                .key_type(KeyType::Range)
                .build()?,
        )
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
}

fn op_key(id: &str) -> String {
    format!("op#{id}")
}

fn get_s(item: &HashMap<String, AttributeValue>, key: &str) -> String {
    item.get(key).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn get_n(item: &HashMap<String, AttributeValue>, key: &str) -> i64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn lock_from_item(item: &HashMap<String, AttributeValue>) -> LockItem {
    LockItem {
        environment: get_s(item, "pk").trim_start_matches("lock#").to_owned(),
        holder: get_s(item, "holder"),
        fence: get_s(item, "fence"),
        operation_id: get_s(item, "operation_id"),
        operation_kind: get_s(item, "operation_kind"),
        operation_status: get_s(item, "operation_status"),
        acquired_at: get_n(item, "acquired_at"),
        expires_at: get_n(item, "expires_at"),
        operation: get_s(item, "operation"),
    }
}

fn op_from_item(item: &HashMap<String, AttributeValue>) -> OperationItem {
    OperationItem {
        id: get_s(item, "pk").trim_start_matches("op#").to_owned(),
        environment: get_s(item, "environment"),
        started_at: get_s(item, "started_at"),
        status: get_s(item, "status"),
        document: get_s(item, "document"),
    }
}

#[async_trait]
impl LockTable for SdkLockTable {
    async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError> {
        let resource = format!("{}/{}", self.table, lock_key(&item.environment));
        let mut values = HashMap::from([
            (":now".to_owned(), n(now)),
            // An empty id never matches a real operation.
            (":takeover".to_owned(), s(takeover_of.unwrap_or(""))),
        ]);
        for (i, status) in FINISHED_STATUSES.iter().enumerate() {
            values.insert(format!(":f{i}"), s(status));
        }
        self.put_lock(item)
            .condition_expression(
                "attribute_not_exists(pk) OR (expires_at < :now AND (operation_id = :takeover OR operation_status IN (:f0, :f1, :f2, :f3)))",
            )
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DynamoDB", "PutItem", resource, e))?;
        Ok(())
    }

    async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&lock_key(environment)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", &lock_key(environment), e))?;
        Ok(out.item().map(lock_from_item))
    }

    async fn renew(&self, environment: &str, fence: &str, expires_at: i64) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&lock_key(environment)))
            .update_expression("SET expires_at = :exp")
            .condition_expression("fence = :fence")
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":fence", s(fence))
            .send()
            .await
            .map_err(|e| self.failed("UpdateItem", &lock_key(environment), e))?;
        Ok(())
    }

    async fn release(&self, environment: &str, fence: &str) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&lock_key(environment)))
            .condition_expression("fence = :fence")
            .expression_attribute_values(":fence", s(fence))
            .send()
            .await
            .map_err(|e| self.failed("DeleteItem", &lock_key(environment), e))?;
        Ok(())
    }

    async fn seize(&self, item: &LockItem, held_fence: &str) -> Result<(), AwsError> {
        let resource = format!("{}/{}", self.table, lock_key(&item.environment));
        self.put_lock(item)
            .condition_expression("fence = :held")
            .expression_attribute_values(":held", s(held_fence))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DynamoDB", "PutItem", resource, e))?;
        Ok(())
    }

    async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError> {
        let resource = format!("{}/{}", self.table, op_key(&op.id));
        let put = self.operation_put(op, &resource)?;
        let Some(fence) = fence else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item().clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DynamoDB", "PutItem", resource, e))?;
            return Ok(());
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&lock_key(&op.environment)))
            .update_expression("SET operation = :doc, operation_status = :status")
            .condition_expression("operation_id = :op AND fence = :fence")
            .expression_attribute_values(":doc", s(&op.document))
            .expression_attribute_values(":status", s(&op.status))
            .expression_attribute_values(":op", s(&op.id))
            .expression_attribute_values(":fence", s(fence))
            .build()
            .map_err(|e| AwsError::new("DynamoDB", "UpdateItem", &resource, AwsErrorKind::Other, e.to_string()))?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DynamoDB", "TransactWriteItems", resource, e))?;
        Ok(())
    }

    async fn save_sub_operation(&self, op: &OperationItem, parent: &str, fence: &str) -> Result<(), AwsError> {
        let resource = format!("{}/{}", self.table, op_key(&op.id));
        let put = self.operation_put(op, &resource)?;
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(&lock_key(&op.environment)))
            .condition_expression("operation_id = :op AND fence = :fence")
            .expression_attribute_values(":op", s(parent))
            .expression_attribute_values(":fence", s(fence))
            .build()
            .map_err(|e| {
                AwsError::new(
                    "DynamoDB",
                    "ConditionCheck",
                    &resource,
                    AwsErrorKind::Other,
                    e.to_string(),
                )
            })?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DynamoDB", "TransactWriteItems", resource, e))?;
        Ok(())
    }

    async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&op_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", &op_key(id), e))?;
        Ok(out.item().map(op_from_item))
    }

    async fn put_control(
        &self,
        environment: &str,
        operation_id: &str,
        command: &str,
        actor: &str,
    ) -> Result<(), AwsError> {
        // On the lock item itself: the command belongs to the operation holding it, and a new lock (a new
        // put of the item) starts with none.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&lock_key(environment)))
            .update_expression("SET control_command = :cmd, control_actor = :actor")
            .condition_expression("operation_id = :op")
            .expression_attribute_values(":cmd", s(command))
            .expression_attribute_values(":actor", s(actor))
            .expression_attribute_values(":op", s(operation_id))
            .send()
            .await
            .map_err(|e| self.failed("UpdateItem", &lock_key(environment), e))?;
        Ok(())
    }

    async fn take_control(&self, environment: &str, fence: &str) -> Result<Option<(String, String)>, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&lock_key(environment)))
            .update_expression("REMOVE control_command, control_actor")
            .condition_expression("fence = :fence")
            .expression_attribute_values(":fence", s(fence))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.failed("UpdateItem", &lock_key(environment), e))?;
        Ok(out.attributes().and_then(|item| {
            let command = get_s(item, "control_command");
            (!command.is_empty()).then(|| (command, get_s(item, "control_actor")))
        }))
    }

    async fn add_approval(&self, operation_id: &str, step: &str, approval: &ApprovalItem) -> Result<(), AwsError> {
        let key = approval_key(operation_id, step);
        let record = serde_json::to_string(approval).expect("an approval serialises");
        // The identity set is the condition, the record list what people read; one update writes both.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key))
            .update_expression("SET records = list_append(if_not_exists(records, :none), :record) ADD identities :who")
            .condition_expression("attribute_not_exists(identities) OR NOT contains(identities, :identity)")
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":record", AttributeValue::L(vec![s(&record)]))
            .expression_attribute_values(":who", AttributeValue::Ss(vec![approval.identity.clone()]))
            .expression_attribute_values(":identity", s(&approval.identity))
            .send()
            .await
            .map_err(|e| self.failed("UpdateItem", &key, e))?;
        Ok(())
    }

    async fn list_approvals(&self, operation_id: &str, step: &str) -> Result<Vec<ApprovalItem>, AwsError> {
        let key = approval_key(operation_id, step);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", &key, e))?;
        let records = out
            .item()
            .and_then(|item| item.get("records"))
            .and_then(|records| records.as_l().ok())
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(records
            .iter()
            .filter_map(|r| serde_json::from_str(r.as_s().ok()?).ok())
            .collect())
    }

    async fn list_operations(&self, environment: &str, limit: usize) -> Result<Vec<OperationItem>, AwsError> {
        match self.query_operations(environment, limit).await {
            // AWS answers a missing index with a ValidationException, moto with ResourceNotFound; both
            // name the index, which a missing table's error does not.
            Err(e)
                if matches!(e.kind, AwsErrorKind::Other | AwsErrorKind::NotFound)
                    && e.detail.contains(OPERATIONS_INDEX) =>
            {
                tracing::warn!(
                    table = %self.table,
                    "the lock table has no `{OPERATIONS_INDEX}` index, so listing operations reads the whole table; `suma init` adds it"
                );
                let mut items = self.scan_operations(Some(environment)).await?;
                items.sort_by(|a, b| b.started_at.cmp(&a.started_at));
                items.truncate(limit);
                Ok(items)
            }
            listed => listed,
        }
    }
}

impl SdkLockTable {
    /// The newest `limit` operations of `environment` from [`OPERATIONS_INDEX`], page by page.
    async fn query_operations(&self, environment: &str, limit: usize) -> Result<Vec<OperationItem>, AwsError> {
        let mut items = Vec::new();
        let mut start_key = None;
        while items.len() < limit {
            let page = i32::try_from(limit - items.len()).unwrap_or(i32::MAX).min(100);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPERATIONS_INDEX)
                .key_condition_expression("environment = :env")
                .expression_attribute_values(":env", s(environment))
                .scan_index_forward(false)
                .limit(page)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk(
                        "DynamoDB",
                        "Query",
                        format!("{}/index/{OPERATIONS_INDEX}", self.table),
                        e,
                    )
                })?;
            items.extend(out.items().iter().map(op_from_item));
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    /// Every operation item of the table (of `environment` when given), read by a consistent scan.
    async fn scan_operations(&self, environment: Option<&str>) -> Result<Vec<OperationItem>, AwsError> {
        let mut items = Vec::new();
        let mut start_key = None;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":prefix", s("op#"))
                .set_exclusive_start_key(start_key);
            scan = match environment {
                Some(environment) => scan
                    .filter_expression("begins_with(pk, :prefix) AND environment = :env")
                    .expression_attribute_values(":env", s(environment)),
                None => scan.filter_expression("begins_with(pk, :prefix)"),
            };
            let out = scan
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DynamoDB", "Scan", &self.table, e))?;
            items.extend(out.items().iter().map(op_from_item));
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }
}

/// The `aws-sdk` implementation of [`LockTableSetup`].
pub struct SdkLockTableSetup {
    table: SdkLockTable,
}

impl SdkLockTableSetup {
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            table: SdkLockTable::new(config, table),
        }
    }
}

#[async_trait]
impl LockTableSetup for SdkLockTableSetup {
    fn table(&self) -> &str {
        &self.table.table
    }

    async fn describe(&self) -> Result<Option<LockTableFacts>, AwsError> {
        let client = &self.table.client;
        let out = match client.describe_table().table_name(&self.table.table).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.table.failed("DescribeTable", "", e)),
        };
        let Some(table) = out.table else {
            return Ok(None);
        };
        let types: HashMap<&str, &str> = table
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name(), a.attribute_type().as_str()))
            .collect();
        let key_schema = table
            .key_schema()
            .iter()
            .map(|k| {
                let name = k.attribute_name();
                (
                    name.to_owned(),
                    types.get(name).copied().unwrap_or_default().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        let backups = client
            .describe_continuous_backups()
            .table_name(&self.table.table)
            .send()
            .await
            .map_err(|e| self.table.failed("DescribeContinuousBackups", "", e))?;
        let point_in_time_recovery = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .is_some_and(|s| s.as_str() == "ENABLED");
        let operations_index = table
            .global_secondary_indexes()
            .iter()
            .any(|index| index.index_name() == Some(OPERATIONS_INDEX));
        Ok(Some(LockTableFacts {
            status: table.table_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            key_schema,
            deletion_protection: table.deletion_protection_enabled().unwrap_or(false),
            point_in_time_recovery,
            operations_index,
        }))
    }

    async fn create(&self) -> Result<(), AwsError> {
        use aws_sdk_dynamodb::types::{BillingMode, KeySchemaElement, KeyType, SseSpecification};
        let build = |what: &str, e: aws_sdk_dynamodb::error::BuildError| {
            AwsError::new(
                "DynamoDB",
                "CreateTable",
                self.table.table.clone(),
                AwsErrorKind::Other,
                format!("{what}: {e}"),
            )
        };
        self.table
            .client
            .create_table()
            .table_name(&self.table.table)
            .set_attribute_definitions(Some(key_attributes().map_err(|e| build("attribute", e))?))
            .global_secondary_indexes(operations_index().map_err(|e| build("index", e))?)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| build("key", e))?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .sse_specification(SseSpecification::builder().enabled(true).build())
            .deletion_protection_enabled(true)
            .send()
            .await
            .map_err(|e| self.table.failed("CreateTable", "", e))?;
        Ok(())
    }

    async fn add_operations_index(&self) -> Result<(), AwsError> {
        use aws_sdk_dynamodb::types::{CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate};
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            AwsError::new(
                "DynamoDB",
                "UpdateTable",
                self.table.table.clone(),
                AwsErrorKind::Other,
                e.to_string(),
            )
        };
        let index = operations_index().map_err(build)?;
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(OPERATIONS_INDEX)
            .set_key_schema(Some(index.key_schema().to_vec()))
            .set_projection(index.projection().cloned())
            .build()
            .map_err(build)?;
        self.table
            .client
            .update_table()
            .table_name(&self.table.table)
            .set_attribute_definitions(Some(key_attributes().map_err(build)?))
            .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build())
            .send()
            .await
            .map_err(|e| self.table.failed("UpdateTable", "", e))?;
        Ok(())
    }

    async fn backfill_started_at(&self) -> Result<usize, AwsError> {
        let missing: Vec<OperationItem> = self
            .table
            .scan_operations(None)
            .await?
            .into_iter()
            .filter(|op| op.started_at.is_empty())
            .collect();
        for op in &missing {
            // The document's own `started_at`, written the way the journal writes it now.
            let started_at = serde_json::from_str::<serde_json::Value>(&op.document)
                .ok()
                .and_then(|doc| {
                    doc.get("started_at")?
                        .as_str()?
                        .parse::<chrono::DateTime<chrono::Utc>>()
                        .ok()
                })
                .map(started_at_key)
                .unwrap_or_default();
            if started_at.is_empty() {
                continue;
            }
            let key = op_key(&op.id);
            let updated = self
                .table
                .client
                .update_item()
                .table_name(&self.table.table)
                .key("pk", s(&key))
                .update_expression("SET started_at = :started")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(started_at)")
                .expression_attribute_values(":started", s(&started_at))
                .send()
                .await;
            match updated {
                Ok(_) => {}
                // Saved again meanwhile, with its `started_at`.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(self.table.failed("UpdateItem", &key, e)),
            }
        }
        Ok(missing.len())
    }

    async fn enable_point_in_time_recovery(&self) -> Result<(), AwsError> {
        use aws_sdk_dynamodb::types::PointInTimeRecoverySpecification;
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| {
                AwsError::new(
                    "DynamoDB",
                    "UpdateContinuousBackups",
                    self.table.table.clone(),
                    AwsErrorKind::Other,
                    e.to_string(),
                )
            })?;
        self.table
            .client
            .update_continuous_backups()
            .table_name(&self.table.table)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| self.table.failed("UpdateContinuousBackups", "", e))?;
        Ok(())
    }

    async fn enable_deletion_protection(&self) -> Result<(), AwsError> {
        self.table
            .client
            .update_table()
            .table_name(&self.table.table)
            .deletion_protection_enabled(true)
            .send()
            .await
            .map_err(|e| self.table.failed("UpdateTable", "", e))?;
        Ok(())
    }
}
