//! A test engine for the use cases, where a real process adds nothing: a
//! config over two directory locations and a key file, with ARM swapped for
//! `MemoryFactory` (the emulator, the referee, is for the end-to-end
//! tests). Built per test in its own temporary directory.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::Engine;
use crate::config::Config;
use crate::factory::memory::MemoryFactory;

pub const SUB: &str = "00000000-0000-4000-8000-000000000001";
pub const FACTORY: &str = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf";

pub struct TestEngine {
    pub engine: Engine,
    pub arm: Arc<MemoryFactory>,
    pub dir: PathBuf,
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An engine whose factory `f` is `/subscriptions/SUB/resourceGroups/rg/…/adf`,
/// seeded with its factory body and `pipelines`; `extra` goes into its
/// `[[factory]]` block.
pub fn engine(pipelines: &[&str], extra: &str) -> TestEngine {
    let dir = std::env::temp_dir().join(format!("adfdr-ops-{}", uuid::Uuid::new_v4().simple()));
    for d in ["weu", "neu", "state"] {
        std::fs::create_dir_all(dir.join(d)).expect("dirs");
    }
    let key = dir.join("bg.key");
    crate::keys::generate_key_file(&key).expect("key");
    let text = format!(
        r#"[agent]
state_dir = "{state}"
[auth]
method = "managed-identity"
[[location]]
name = "weu"
url = "file://{weu}"
[[location]]
name = "neu"
url = "file://{neu}"
[[key]]
id = "bg"
file = "{key}"
[[factory]]
name = "f"
subscription = "{SUB}"
resource_group = "rg"
factory = "adf"
{extra}
"#,
        state = dir.join("state").display(),
        weu = dir.join("weu").display(),
        neu = dir.join("neu").display(),
        key = key.display(),
    );
    let config = Config::parse(&text, &dir.join("adfdr.toml")).expect("config");
    let mut engine = Engine::new(config).expect("engine");
    let arm = Arc::new(MemoryFactory::new());
    arm.put(
        FACTORY,
        json!({"name": "adf", "id": FACTORY, "location": "westeurope",
               "properties": {"createTime": "2026-01-01T00:00:00Z", "provisioningState": "Succeeded"}}),
    );
    for p in pipelines {
        put_pipeline(&arm, p, "Wait");
    }
    engine.arm = arm.clone();
    TestEngine { engine, arm, dir }
}

/// Writes pipeline `name` with one activity of `activity` type.
pub fn put_pipeline(arm: &MemoryFactory, name: &str, activity: &str) {
    arm.put(
        &format!("{FACTORY}/pipelines/{name}"),
        json!({"name": name, "id": format!("{FACTORY}/pipelines/{name}"),
               "properties": {"activities": [{"name": "a", "type": activity, "typeProperties": {"waitTimeInSeconds": 1}}]}}),
    );
}

/// An ARM event about `path` (`write` or `delete`), as Event Grid delivers it.
pub fn event(id: &str, path: &str, action: &str, time: &str) -> crate::plan::events::Change {
    let kind = if action == "delete" {
        "Microsoft.Resources.ResourceDeleteSuccess"
    } else {
        "Microsoft.Resources.ResourceWriteSuccess"
    };
    let segment = path
        .split("/factories/")
        .nth(1)
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, child)| child.split('/').next().unwrap_or("").to_string());
    let operation = match segment {
        Some(s) => format!("Microsoft.DataFactory/factories/{s}/{action}"),
        None => format!("Microsoft.DataFactory/factories/{action}"),
    };
    let text = json!({
        "subject": path, "eventType": kind, "eventTime": time, "id": id,
        "data": {"resourceUri": path, "operationName": operation,
                 "correlationId": format!("c-{id}"), "claims": {"appid": "tester"}}
    })
    .to_string();
    crate::plan::events::parse_message(&text)
        .expect("an event")
        .pop()
        .expect("one change")
}
