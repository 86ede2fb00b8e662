//! GPU ids handed to replicas through CUDA_VISIBLE_DEVICES.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{Event, Harness, TEST_LIMIT, cuda_devices, revision, template};
use tokio::time::timeout;

fn gpus(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_gets_its_own_gpus_and_one_too_many_is_unschedulable() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| c.gpus = gpus(&["0", "1", "2", "3"]));
        let rev = revision("llm-00001");
        let mut t = template("llm-00001", &[]);
        t.gpus_per_replica = 2;
        h.backend.define(t);
        h.backend.scale(&rev, 2);
        let endpoints = h.ready(2).await;
        let mut seen = BTreeSet::new();
        for endpoint in &endpoints {
            let devices = cuda_devices(endpoint)
                .await
                .expect("CUDA_VISIBLE_DEVICES set");
            let ids: Vec<&str> = devices.split(',').collect();
            assert_eq!(ids.len(), 2, "{devices}");
            for id in ids {
                assert!(seen.insert(id.to_owned()), "GPU {id} given twice");
            }
        }
        assert_eq!(seen.len(), 4);

        h.backend.scale(&rev, 3);
        match h.next(Duration::from_secs(5)).await {
            Event::Unschedulable(r, reason) => {
                assert_eq!(r, rev);
                assert_eq!(reason, "needs 2 GPUs, the machine has 0 free (of 4)");
            }
            other => panic!("{other:?}"),
        }
        let status = h.backend.status(&rev).unwrap();
        assert_eq!((status.desired, status.ready, status.starting), (3, 2, 0));

        // A replica that goes away gives its GPUs back to the next one.
        h.backend.scale(&rev, 1);
        h.backend.scale(&rev, 2);
        let mut readied = Vec::new();
        while readied.is_empty() {
            if let Event::Ready(_, endpoint) = h.next(Duration::from_secs(10)).await {
                readied.push(endpoint);
            }
        }
        let devices = cuda_devices(&readied[0]).await.unwrap();
        assert_eq!(devices.split(',').count(), 2);
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_more_gpus_than_the_machine_has_never_starts_a_replica() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| c.gpus = gpus(&["0", "1"]));
        let rev = revision("huge-00001");
        let mut t = template("huge-00001", &[]);
        t.gpus_per_replica = 3;
        h.backend.define(t);
        h.backend.scale(&rev, 1);
        assert_eq!(
            h.next(Duration::from_secs(5)).await,
            Event::Unschedulable(
                rev.clone(),
                "needs 3 GPUs, the machine has 2 free (of 2)".into()
            )
        );
        h.quiet(Duration::from_millis(300)).await;
        let status = h.backend.status(&rev).unwrap();
        assert_eq!((status.starting, status.ready), (0, 0));
        assert!(status.last_error.unwrap().contains("needs 3 GPUs"));
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_replica_sees_no_gpu() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| c.gpus = gpus(&["0"]));
        let rev = revision("cpu-00001");
        h.backend.define(template("cpu-00001", &[]));
        h.backend.scale(&rev, 1);
        let endpoint = h.ready(1).await[0];
        assert_eq!(cuda_devices(&endpoint).await.as_deref(), Some(""));
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}
