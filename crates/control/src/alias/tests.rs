//! Alias operations and alias-qualified reads, deletes and invokes end to end through
//! `ControlPlane::execute`, on a real store in a temp dir.

use serde_json::{json, Value};

use crate::version::tests::{
    assert_err, create_settled, exec, fixture, ok, scope, two_versions, update_env, ARN,
};
use crate::ErrorCode;

async fn create_alias(cp: &crate::ControlPlane, body: Value) -> Value {
    ok(cp, "CreateAlias", body).await
}

#[tokio::test]
async fn alias_lifecycle_matches_aws_shapes() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    let a11 = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "aliasname1_1", "FunctionVersion": "1",
               "Description": "custom-alias",
               "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.2}}}),
    )
    .await;
    let rev = a11["RevisionId"].clone();
    assert_eq!(
        a11,
        json!({
            "AliasArn": format!("{ARN}:f:aliasname1_1"),
            "Name": "aliasname1_1",
            "FunctionVersion": "1",
            "Description": "custom-alias",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.2}},
            "RevisionId": rev,
        })
    );
    assert_eq!(
        ok(
            &fx.cp,
            "GetAlias",
            json!({"FunctionName": "f", "Name": "aliasname1_1"})
        )
        .await,
        a11
    );
    // GetFunction through the alias: the version's configuration under the alias's ARN.
    for input in [
        json!({"FunctionName": "f", "Qualifier": "aliasname1_1"}),
        json!({"FunctionName": format!("{ARN}:f:aliasname1_1")}),
    ] {
        let g = ok(&fx.cp, "GetFunction", input).await;
        let c = &g["Configuration"];
        assert_eq!(c["FunctionArn"], format!("{ARN}:f:aliasname1_1"));
        assert_eq!(c["Version"], "1");
        assert_eq!(c["Environment"], json!({"Variables": {"STAGE": "staging"}}));
    }
    let c = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f:aliasname1_1"}),
    )
    .await;
    assert_eq!(c["Version"], "1");
    assert_err(
        exec(
            &fx.cp,
            "GetFunction",
            json!({"FunctionName": "f", "Qualifier": "aliasdoesnotexist"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:f:aliasdoesnotexist"),
    );

    let a12 = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "aliasname1_2", "FunctionVersion": "1",
               "Description": "custom-alias"}),
    )
    .await;
    assert!(a12.get("RoutingConfig").is_none());
    let a13 = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "aliasname1_3", "FunctionVersion": "1"}),
    )
    .await;
    assert_eq!(a13["Description"], "");
    create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "aliasname2", "FunctionVersion": "2"}),
    )
    .await;

    // An empty routing config removes the routing; the revision changes.
    let u = ok(
        &fx.cp,
        "UpdateAlias",
        json!({"FunctionName": "f", "Name": "aliasname1_1",
               "RoutingConfig": {"AdditionalVersionWeights": {}}}),
    )
    .await;
    assert!(u.get("RoutingConfig").is_none());
    assert_eq!(u["Description"], "custom-alias");
    assert_eq!(u["FunctionVersion"], "1");
    assert_ne!(u["RevisionId"], rev);
    // An update without changes still makes a new revision.
    let u2 = ok(
        &fx.cp,
        "UpdateAlias",
        json!({"FunctionName": "f", "Name": "aliasname1_2"}),
    )
    .await;
    assert_ne!(u2["RevisionId"], a12["RevisionId"]);
    assert_eq!(u2["Description"], "custom-alias");

    let all = ok(&fx.cp, "ListAliases", json!({"FunctionName": "f"})).await;
    let names: Vec<&str> = all["Aliases"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["Name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["aliasname1_1", "aliasname1_2", "aliasname1_3", "aliasname2"]
    );
    assert!(all.get("NextMarker").is_none());
    let for_v1 = ok(
        &fx.cp,
        "ListAliases",
        json!({"FunctionName": "f", "FunctionVersion": "1"}),
    )
    .await;
    assert_eq!(for_v1["Aliases"].as_array().map(Vec::len), Some(3));

    let d = ok(
        &fx.cp,
        "DeleteAlias",
        json!({"FunctionName": "f", "Name": "aliasname1_1"}),
    )
    .await;
    assert_eq!(d, json!({}));
    let after = ok(&fx.cp, "ListAliases", json!({"FunctionName": "f"})).await;
    assert_eq!(after["Aliases"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn invalid_routing_configs_are_refused_with_aws_messages() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    let attempt = |version: &str, weights: Value| {
        json!({"FunctionName": "f", "Name": "custom", "FunctionVersion": version,
               "RoutingConfig": {"AdditionalVersionWeights": weights}})
    };
    let cases = [
        (
            attempt("1", json!({"1": 0.8, "2": 0.2})),
            ErrorCode::InvalidParameterValueException,
            "Number of items in AdditionalVersionWeights cannot be greater than 1".to_string(),
        ),
        (
            attempt("1", json!({"2": 2.0})),
            ErrorCode::ValidationException,
            "1 validation error detected: Value '{2=2.0}' at 'routingConfig.additionalVersionWeights' \
             failed to satisfy constraint: Map value must satisfy constraint: [Member must have value \
             less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member \
             must not be null]"
                .to_string(),
        ),
        (
            attempt("1", json!({"1": 0.5})),
            ErrorCode::InvalidParameterValueException,
            "Invalid function version 1. Function version 1 is already included in routing \
             configuration."
                .to_string(),
        ),
        (
            attempt("10", json!({"2": 0.5})),
            ErrorCode::ResourceNotFoundException,
            format!("Function not found: {ARN}:f:10"),
        ),
        (
            attempt("1", json!({"10": 0.5})),
            ErrorCode::ResourceNotFoundException,
            format!("Function not found: {ARN}:f:10"),
        ),
        (
            attempt("$LATEST", json!({"1": 0.5})),
            ErrorCode::InvalidParameterValueException,
            "$LATEST is not supported for an alias pointing to more than 1 version".to_string(),
        ),
        (
            attempt("1", json!({"$LATEST": 0.5})),
            ErrorCode::ValidationException,
            "1 validation error detected: Value '{$LATEST=0.5}' at \
             'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must \
             satisfy constraint: [Member must have length less than or equal to 1024, Member must \
             have length greater than or equal to 1, Member must satisfy regular expression \
             pattern: [0-9]+]"
                .to_string(),
        ),
        (
            json!({"FunctionName": "f-unknown", "Name": "custom", "FunctionVersion": "1",
                   "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}}),
            ErrorCode::ResourceNotFoundException,
            format!("Function not found: {ARN}:f-unknown:1"),
        ),
    ];
    for (input, code, message) in cases {
        assert_err(exec(&fx.cp, "CreateAlias", input).await, code, &message);
    }
    // None of them was stored.
    let list = ok(&fx.cp, "ListAliases", json!({"FunctionName": "f"})).await;
    assert_eq!(list["Aliases"], json!([]));

    let latest = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "custom-latest", "FunctionVersion": "$LATEST"}),
    )
    .await;
    assert_eq!(latest["FunctionVersion"], "$LATEST");
    let empty = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "custom-empty", "FunctionVersion": "1",
               "RoutingConfig": {"AdditionalVersionWeights": {}}}),
    )
    .await;
    assert!(empty.get("RoutingConfig").is_none());
    create_alias(&fx.cp, attempt("1", json!({"2": 0.5}))).await;
    assert_err(
        exec(&fx.cp, "CreateAlias", attempt("1", json!({"2": 0.5}))).await,
        ErrorCode::ResourceConflictException,
        &format!("Alias already exists: {ARN}:f:custom"),
    );
    // UpdateAlias checks the same rules against the resulting alias.
    assert_err(
        exec(
            &fx.cp,
            "UpdateAlias",
            json!({"FunctionName": "f", "Name": "custom", "FunctionVersion": "2"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        "Invalid function version 2. Function version 2 is already included in routing \
         configuration.",
    );
    assert_err(
        exec(
            &fx.cp,
            "UpdateAlias",
            json!({"FunctionName": "f", "Name": "custom", "FunctionVersion": "$LATEST"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        "$LATEST is not supported for an alias pointing to more than 1 version",
    );
    let moved = ok(
        &fx.cp,
        "UpdateAlias",
        json!({"FunctionName": "f", "Name": "custom", "FunctionVersion": "2",
               "RoutingConfig": {"AdditionalVersionWeights": {"1": 0.1}}}),
    )
    .await;
    assert_eq!(moved["FunctionVersion"], "2");
    assert_eq!(
        moved["RoutingConfig"],
        json!({"AdditionalVersionWeights": {"1": 0.1}})
    );
}

#[tokio::test]
async fn missing_aliases_are_reported_per_operation_as_aws_does() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    assert_err(
        exec(
            &fx.cp,
            "GetAlias",
            json!({"FunctionName": "f", "Name": "non-existent"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Cannot find alias arn: {ARN}:f:non-existent"),
    );
    assert_err(
        exec(
            &fx.cp,
            "UpdateAlias",
            json!({"FunctionName": "f", "Name": "non-existent", "Description": "x"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Alias not found: {ARN}:f:non-existent"),
    );
    // Deleting an alias that does not exist succeeds.
    ok(
        &fx.cp,
        "DeleteAlias",
        json!({"FunctionName": "f", "Name": "non-existent"}),
    )
    .await;
    for op in ["GetAlias", "DeleteAlias"] {
        assert_err(
            exec(&fx.cp, op, json!({"FunctionName": "nope", "Name": "a"})).await,
            ErrorCode::ResourceNotFoundException,
            &format!("Function not found: {ARN}:nope"),
        );
    }
    assert_err(
        exec(&fx.cp, "ListAliases", json!({"FunctionName": "nope"})).await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:nope"),
    );
    let e = fx
        .cp
        .resolve_invoke(&scope(), "f", Some("ghost"))
        .unwrap_err();
    assert_eq!(e.message, format!("Function not found: {ARN}:f:ghost"));
}

#[tokio::test]
async fn alias_names_may_not_be_all_digits() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    ok(&fx.cp, "PublishVersion", json!({"FunctionName": "f"})).await;
    let dated = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "2024-01-02", "FunctionVersion": "1"}),
    )
    .await;
    assert_eq!(dated["AliasArn"], format!("{ARN}:f:2024-01-02"));
    assert_err(
        exec(
            &fx.cp,
            "CreateAlias",
            json!({"FunctionName": "f", "Name": "2024", "FunctionVersion": "1"}),
        )
        .await,
        ErrorCode::ValidationException,
        "1 validation error detected: Value '2024' at 'name' failed to satisfy constraint: Member \
         must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
    );
}

#[tokio::test]
async fn update_alias_checks_the_revision_id_and_leaves_function_revisions_alone() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    let v1 = ok(&fx.cp, "PublishVersion", json!({"FunctionName": "f"})).await;
    let latest = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f"}),
    )
    .await;
    let a = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "revision_alias", "FunctionVersion": "1"}),
    )
    .await;
    let latest_after = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f"}),
    )
    .await;
    assert_eq!(latest_after["RevisionId"], latest["RevisionId"]);
    let v1_after = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f", "Qualifier": "1"}),
    )
    .await;
    assert_eq!(v1_after["RevisionId"], v1["RevisionId"]);
    assert_err(
        exec(
            &fx.cp,
            "UpdateAlias",
            json!({"FunctionName": "f", "Name": "revision_alias", "RevisionId": "wrong"}),
        )
        .await,
        ErrorCode::PreconditionFailedException,
        "The Revision Id provided does not match the latest Revision Id. Call the \
         GetFunction/GetAlias API to retrieve the latest Revision Id",
    );
    let u = ok(
        &fx.cp,
        "UpdateAlias",
        json!({"FunctionName": "f", "Name": "revision_alias",
               "Description": "something changed", "RevisionId": a["RevisionId"]}),
    )
    .await;
    assert_eq!(u["Description"], "something changed");
    assert_ne!(u["RevisionId"], a["RevisionId"]);
}

#[tokio::test]
async fn concurrent_alias_updates_with_one_revision_let_exactly_one_win() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    let a = create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "1"}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let cp = fx.cp.clone();
        let rev = a["RevisionId"].clone();
        tasks.push(tokio::spawn(async move {
            cp.execute(
                &scope(),
                "UpdateAlias",
                json!({"FunctionName": "f", "Name": "live", "RevisionId": rev,
                       "Description": format!("writer {i}")}),
            )
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => wins += 1,
            Ok(Err(e)) => assert_eq!(e.code, ErrorCode::PreconditionFailedException),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn versions_an_alias_uses_cannot_be_deleted() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "1"}),
    )
    .await;
    create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "canary", "FunctionVersion": "1",
               "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}}}),
    )
    .await;
    assert_err(
        exec(
            &fx.cp,
            "DeleteFunction",
            json!({"FunctionName": "f", "Qualifier": "1"}),
        )
        .await,
        ErrorCode::ResourceConflictException,
        "Unable to delete version because the following aliases reference it: [canary, live]",
    );
    assert_err(
        exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f:2"})).await,
        ErrorCode::ResourceConflictException,
        "Unable to delete version because the following aliases reference it: [canary]",
    );
    ok(
        &fx.cp,
        "UpdateAlias",
        json!({"FunctionName": "f", "Name": "canary",
               "RoutingConfig": {"AdditionalVersionWeights": {}}}),
    )
    .await;
    ok(&fx.cp, "DeleteFunction", json!({"FunctionName": "f:2"})).await;
    // Deleting through an alias qualifier is not a thing.
    assert_err(
        exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f:live"})).await,
        ErrorCode::InvalidParameterValueException,
        "Deletion of aliases is not currently supported.",
    );
    assert!(fx.cp.resolve_invoke(&scope(), "f", Some("live")).is_ok());
}

#[tokio::test]
async fn weighted_routing_sends_invokes_to_both_versions_by_weight() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "canary", "FunctionVersion": "1",
               "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.3}}}),
    )
    .await;
    let (v1, _) = fx.cp.resolve_invoke(&scope(), "f", Some("1")).unwrap();
    let (v2, _) = fx.cp.resolve_invoke(&scope(), "f", Some("2")).unwrap();
    let n = 4000;
    let mut to_v2 = 0;
    for _ in 0..n {
        let (spec, invoked) = fx.cp.resolve_invoke(&scope(), "f", Some("canary")).unwrap();
        assert_eq!(invoked, format!("{ARN}:f:canary"));
        if spec.version == "2" {
            assert!(std::sync::Arc::ptr_eq(&spec, &v2));
            to_v2 += 1;
        } else {
            assert!(std::sync::Arc::ptr_eq(&spec, &v1));
        }
    }
    let share = f64::from(to_v2) / f64::from(n);
    assert!((0.25..0.35).contains(&share), "share to version 2: {share}");
    // The name:alias form works too.
    let (_, invoked) = fx.cp.resolve_invoke(&scope(), "f:canary", None).unwrap();
    assert_eq!(invoked, format!("{ARN}:f:canary"));
}

#[tokio::test]
async fn weights_zero_and_one_are_exact() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    for (name, weight, expected) in [("never", 0.0, "1"), ("always", 1.0, "2")] {
        create_alias(
            &fx.cp,
            json!({"FunctionName": "f", "Name": name, "FunctionVersion": "1",
                   "RoutingConfig": {"AdditionalVersionWeights": {"2": weight}}}),
        )
        .await;
        for _ in 0..200 {
            let (spec, _) = fx.cp.resolve_invoke(&scope(), "f", Some(name)).unwrap();
            assert_eq!(spec.version, expected, "{name}");
        }
    }
}

#[tokio::test]
async fn an_alias_to_latest_follows_latest_updates() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    create_alias(
        &fx.cp,
        json!({"FunctionName": "f", "Name": "head", "FunctionVersion": "$LATEST"}),
    )
    .await;
    let (before, _) = fx.cp.resolve_invoke(&scope(), "f", Some("head")).unwrap();
    assert_eq!(before.version, "$LATEST");
    update_env(&fx.cp, "f", "prod").await;
    let (after, _) = fx.cp.resolve_invoke(&scope(), "f", Some("head")).unwrap();
    assert_eq!(
        after.environment.get("STAGE").map(String::as_str),
        Some("prod")
    );
    assert_ne!(after.snapshot_id, before.snapshot_id);
}

#[tokio::test]
async fn list_aliases_pages_with_markers() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    for name in ["c", "a", "b"] {
        create_alias(
            &fx.cp,
            json!({"FunctionName": "f", "Name": name, "FunctionVersion": "$LATEST"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let mut input = json!({"FunctionName": "f", "MaxItems": 2});
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let page = ok(&fx.cp, "ListAliases", input).await;
        for a in page["Aliases"].as_array().cloned().unwrap_or_default() {
            seen.push(a["Name"].as_str().unwrap_or_default().to_string());
        }
        match page["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c"]);
    let filtered = ok(
        &fx.cp,
        "ListAliases",
        json!({"FunctionName": "f", "FunctionVersion": "1"}),
    )
    .await;
    assert_eq!(filtered["Aliases"], json!([]));
}

#[tokio::test]
async fn deleting_an_alias_drops_its_attached_configs() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    ok(&fx.cp, "PublishVersion", json!({"FunctionName": "f"})).await;
    let live = json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "1"});
    create_alias(&fx.cp, live.clone()).await;
    ok(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "Qualifier": "live", "MaximumRetryAttempts": 0}),
    )
    .await;
    let get = json!({"FunctionName": "f", "Qualifier": "live"});
    ok(&fx.cp, "GetFunctionEventInvokeConfig", get.clone()).await;
    ok(
        &fx.cp,
        "DeleteAlias",
        json!({"FunctionName": "f", "Name": "live"}),
    )
    .await;
    // A new alias of the same name starts without the old one's configs.
    create_alias(&fx.cp, live).await;
    let e = exec(&fx.cp, "GetFunctionEventInvokeConfig", get)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
}
