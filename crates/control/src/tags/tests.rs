//! Tags end to end through `ControlPlane::execute`, on a real store in a temp dir.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;

use crate::sub_resource::test_support::*;
use crate::tags::{ResourceTags, TaggedKind};
use crate::{ErrorCode, LambdaError, Scope};

#[tokio::test]
async fn tag_lifecycle_merges_overwrites_and_removes() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let arn = fn_arn("f");
    let list = || exec(&fx.cp, "ListTags", json!({"Resource": arn}));
    assert_eq!(list().await.unwrap(), json!({"Tags": {}}));
    exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": {"A": "tag-a"}}),
    )
    .await
    .unwrap();
    exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": {"B": "tag-b", "C": "tag-c"}}),
    )
    .await
    .unwrap();
    exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": {"C": "tag-c-newsuffix", "D": "tag-d"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        list().await.unwrap(),
        json!({"Tags": {"A": "tag-a", "B": "tag-b", "C": "tag-c-newsuffix", "D": "tag-d"}})
    );
    let got = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(got["Tags"]["C"], "tag-c-newsuffix");
    exec(
        &fx.cp,
        "UntagResource",
        json!({"Resource": arn, "TagKeys": ["A"]}),
    )
    .await
    .unwrap();
    exec(
        &fx.cp,
        "UntagResource",
        json!({"Resource": arn, "TagKeys": ["B", "C", "F"]}),
    )
    .await
    .unwrap();
    assert_eq!(list().await.unwrap(), json!({"Tags": {"D": "tag-d"}}));
    let cp = reopen(&fx);
    assert_eq!(
        exec(&cp, "ListTags", json!({"Resource": arn}))
            .await
            .unwrap(),
        json!({"Tags": {"D": "tag-d"}})
    );
    exec(
        &cp,
        "UntagResource",
        json!({"Resource": arn, "TagKeys": ["D"]}),
    )
    .await
    .unwrap();
    let got = exec(&cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert!(got.get("Tags").is_none());
}

#[tokio::test]
async fn qualified_missing_and_malformed_resources_are_refused() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    for arn in [
        format!("{}:1", fn_arn("f")),
        format!("{}:$LATEST", fn_arn("f")),
    ] {
        let e = exec(
            &fx.cp,
            "TagResource",
            json!({"Resource": arn, "Tags": {"A": "B"}}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "Tags on function aliases and versions are not supported. Please specify a function ARN."
        );
    }
    let missing = fn_arn("doesnotexist");
    for (op, input) in [
        (
            "TagResource",
            json!({"Resource": missing, "Tags": {"A": "B"}}),
        ),
        (
            "UntagResource",
            json!({"Resource": missing, "TagKeys": ["A"]}),
        ),
        ("ListTags", json!({"Resource": missing})),
    ] {
        let e = exec(&fx.cp, op, input).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFoundException, "{op}");
        assert_eq!(e.message, format!("Function not found: {missing}"));
    }
    let e = exec(&fx.cp, "ListTags", json!({"Resource": "arn:aws:something"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    assert!(e.message.starts_with(
        "1 validation error detected: Value 'arn:aws:something' at 'resource' failed to satisfy"
    ));
    let e = exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": fn_arn("f"), "Tags": {}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "An error occurred and the request cannot be processed."
    );
    let e = exec(&fx.cp, "UntagResource", json!({"Resource": fn_arn("f")}))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: \
         Member must not be null"
    );
    let cap = "arn:aws:lambda:us-east-1:000000000000:capacity-provider:cp1";
    let e = exec(&fx.cp, "ListTags", json!({"Resource": cap}))
        .await
        .unwrap_err();
    assert_eq!(e.message, format!("Capacity provider not found: {cap}"));
}

#[tokio::test]
async fn more_than_fifty_tags_are_refused_at_tagging_and_creation() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let tags = |n: usize, prefix: &str| -> BTreeMap<String, String> {
        (0..n)
            .map(|i| (format!("{prefix}{i}_key"), format!("{i}_value")))
            .collect()
    };
    let arn = fn_arn("f");
    let e = exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": tags(51, "")}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "Number of tags exceeds resource tag limit.");
    exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": tags(50, "")}),
    )
    .await
    .unwrap();
    let e = exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": tags(1, "extra")}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    let listed = exec(&fx.cp, "ListTags", json!({"Resource": arn}))
        .await
        .unwrap();
    assert_eq!(listed["Tags"].as_object().unwrap().len(), 50);
    let e = exec(
        &fx.cp,
        "CreateFunction",
        json!({"FunctionName": "g", "Runtime": "python3.12", "Role": ROLE,
               "Handler": "h.h", "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
               "Tags": tags(51, "")}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "Number of tags exceeds resource tag limit.");
}

#[derive(Default)]
struct FakeMappings(Mutex<BTreeMap<String, BTreeMap<String, String>>>);

impl ResourceTags for FakeMappings {
    fn tags(&self, _: &Scope, arn: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        self.0
            .lock()
            .get(arn)
            .cloned()
            .ok_or_else(|| LambdaError::not_found(format!("Event source mapping not found: {arn}")))
    }
    fn set_tags(
        &self,
        _: &Scope,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), LambdaError> {
        self.0.lock().insert(arn.to_string(), tags);
        Ok(())
    }
}

#[tokio::test]
async fn other_resources_are_tagged_through_their_registered_owner() {
    let fx = fixture();
    let arn = "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:\
               3a2f1c4e-1111-2222-3333-444455556666";
    let e = exec(&fx.cp, "ListTags", json!({"Resource": arn}))
        .await
        .unwrap_err();
    assert_eq!(e.message, format!("Event source mapping not found: {arn}"));
    let owner = Arc::new(FakeMappings::default());
    owner.0.lock().insert(arn.into(), BTreeMap::new());
    fx.cp
        .register_tagged_resources(TaggedKind::EventSourceMapping, owner.clone());
    exec(
        &fx.cp,
        "TagResource",
        json!({"Resource": arn, "Tags": {"A": "1", "B": "2"}}),
    )
    .await
    .unwrap();
    exec(
        &fx.cp,
        "UntagResource",
        json!({"Resource": arn, "TagKeys": ["A"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        exec(&fx.cp, "ListTags", json!({"Resource": arn}))
            .await
            .unwrap(),
        json!({"Tags": {"B": "2"}})
    );
}
