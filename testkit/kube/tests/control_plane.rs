//! The control plane is a real one: the API server answers, and the controller manager and
//! the scheduler act on what the tests create.

mod common;

use common::{ACT_TIMEOUT, deployment, eventually};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kiln_kube_testkit::{ControlPlane, KUBERNETES_VERSION};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};

#[tokio::test]
async fn the_api_server_is_ready_and_reports_its_release() {
    let client = ControlPlane::shared().client().unwrap();
    let readyz = client
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(readyz, "ok");
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, KUBERNETES_VERSION);
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "37")
    );
}

#[tokio::test]
async fn the_kubeconfig_it_writes_reaches_the_api_server_as_admin() {
    let control_plane = ControlPlane::shared();
    let kubeconfig = kube::config::Kubeconfig::read_from(control_plane.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string(),
        format!("{}/", control_plane.server_url())
    );
    let client = kube::Client::try_from(config).unwrap();
    // Listing every namespace needs cluster-wide rights: the admin is in system:masters.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(names.contains(&"kube-system".to_owned()), "{names:?}");
}

/// The ReplicaSet owned by `deployment`, once the controller manager has made it.
async fn replica_set_of(replica_sets: &Api<ReplicaSet>, deployment: &Deployment) -> ReplicaSet {
    let uid = deployment.uid().unwrap();
    eventually(
        "the Deployment's ReplicaSet exists",
        ACT_TIMEOUT,
        || async {
            let list = replica_sets.list(&ListParams::default()).await.unwrap();
            list.items.into_iter().find(|rs| {
                rs.owner_references()
                    .iter()
                    .any(|owner| owner.uid == uid && owner.kind == "Deployment")
            })
        },
    )
    .await
}

#[tokio::test]
async fn a_deployment_gets_a_replica_set_and_pods_that_the_scheduler_finds_no_node_for() {
    let control_plane = ControlPlane::shared();
    let client = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&client).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let created = deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();

    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let replica_set = replica_set_of(&replica_sets, &created).await;
    assert_eq!(replica_set.spec.replicas, Some(2));

    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let rs_uid = replica_set.uid().unwrap();
    let pods = eventually(
        "two Pods of the ReplicaSet, each marked unschedulable by the scheduler",
        ACT_TIMEOUT,
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap();
            let owned: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|pod| pod.owner_references().iter().any(|o| o.uid == rs_uid))
                .collect();
            let unschedulable = |pod: &Pod| {
                pod.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
            };
            (owned.len() == 2 && owned.iter().all(unschedulable)).then_some(owned)
        },
    )
    .await;
    for pod in &pods {
        let status = pod.status.as_ref().unwrap();
        assert_eq!(
            status.phase.as_deref(),
            Some("Pending"),
            "{}",
            pod.name_any()
        );
        assert_eq!(pod.spec.as_ref().unwrap().node_name, None);
        // The ServiceAccount admission plugin gave the Pod the namespace's default account.
        assert_eq!(
            pod.spec.as_ref().unwrap().service_account_name.as_deref(),
            Some("default")
        );
    }
}

async fn deleting_a_deployment_removes_its_replica_set_and_pods(policy: PropagationPolicy) {
    let control_plane = ControlPlane::shared();
    let client = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&client).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let created = deployments
        .create(&PostParams::default(), &deployment("doomed", 1))
        .await
        .unwrap();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let replica_set = replica_set_of(&replica_sets, &created).await;
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    eventually("the ReplicaSet's Pod exists", ACT_TIMEOUT, || async {
        let list = pods.list(&ListParams::default()).await.unwrap();
        (!list.items.is_empty()).then_some(())
    })
    .await;

    let params = DeleteParams {
        propagation_policy: Some(policy.clone()),
        ..DeleteParams::default()
    };
    deployments.delete("doomed", &params).await.unwrap();
    if matches!(policy, PropagationPolicy::Foreground) {
        // Foreground: the Deployment stays, marked for deletion, until its dependents are gone.
        let marked = deployments.get("doomed").await.unwrap();
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert!(
            marked
                .finalizers()
                .contains(&"foregroundDeletion".to_owned())
        );
    }
    let rs_name = replica_set.name_any();
    eventually(
        "the garbage collector removed the ReplicaSet",
        ACT_TIMEOUT,
        || async {
            replica_sets
                .get_opt(&rs_name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    eventually("the Pods are gone or going", ACT_TIMEOUT, || async {
        let list = pods.list(&ListParams::default()).await.unwrap();
        // Without a kubelet a deleted Pod is removed at once (it was never running).
        list.items.is_empty().then_some(())
    })
    .await;
    eventually("the Deployment is gone", ACT_TIMEOUT, || async {
        deployments
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_deployment_in_the_background_lets_the_garbage_collector_remove_the_rest() {
    deleting_a_deployment_removes_its_replica_set_and_pods(PropagationPolicy::Background).await;
}

#[tokio::test]
async fn deleting_a_deployment_in_the_foreground_waits_for_its_dependents() {
    deleting_a_deployment_removes_its_replica_set_and_pods(PropagationPolicy::Foreground).await;
}
