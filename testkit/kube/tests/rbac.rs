//! RBAC is enforced: a ServiceAccount's token is refused until a Role allows it.

mod common;

use common::{ACT_TIMEOUT, eventually};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kiln_kube_testkit::ControlPlane;
use kube::api::{Api, ListParams, PostParams};
use kube::config::AuthInfo;

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

#[tokio::test]
async fn a_service_account_token_is_refused_until_a_role_binding_allows_listing_pods() {
    let control_plane = ControlPlane::shared();
    let admin = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&admin).await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &namespace);
    let account = ServiceAccount {
        metadata: named("reader"),
        ..ServiceAccount::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|status| status.token)
        .expect("the TokenRequest's status holds a token");

    // The same cluster and CA, but the ServiceAccount's bearer token instead of the admin's
    // client certificate.
    let mut config = control_plane.config().clone();
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    let reader = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(reader, &namespace);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            let user = format!("system:serviceaccount:{namespace}:reader");
            assert!(status.message.contains(&user), "{status:?}");
        }
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }

    let roles: Api<Role> = Api::namespaced(admin.clone(), &namespace);
    let role = Role {
        metadata: named("pod-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    roles.create(&PostParams::default(), &role).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(admin, &namespace);
    let binding = RoleBinding {
        metadata: named("reader-reads-pods"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: "pod-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: "reader".to_owned(),
            namespace: Some(namespace.clone()),
            ..Subject::default()
        }]),
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    // The authorizer reads roles through an informer: the grant arrives within moments.
    eventually("the reader may list Pods", ACT_TIMEOUT, || async {
        pods.list(&ListParams::default()).await.ok().map(|_| ())
    })
    .await;
    // What the Role does not grant stays refused.
    let accounts_as_reader: Api<ServiceAccount> = Api::namespaced(pods.into_client(), &namespace);
    match accounts_as_reader.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}
