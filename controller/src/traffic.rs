//! KServe's traffic semantics for one InferenceService, as a pure function of its rollout
//! state: who gets what percent, and which revisions carry the `latest` and `prev` tags.
//!
//! - Before any revision has been ready, the newest one gets 100%: requests wait for it in
//!   the router's activator while its first replica starts.
//! - Without a canary percent, the latest *ready* revision takes 100% once it is ready; until
//!   then the previously rolled-out revision keeps serving (no gap).
//! - With `canaryTrafficPercent: P` and a previously rolled-out revision, the latest ready
//!   revision gets P% (tag `latest`) and the previously rolled-out one 100-P (tag `prev`).
//! - Promote is "no canary percent"; rollback is `P = 0`: all traffic back to the previous
//!   rolled-out revision, the latest keeping its tag so it can still be reached by tag.

/// What the controller knows about a service's revisions, in KServe's words.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Rollout {
    /// The newest revision created from the spec.
    pub latest_created: Option<String>,
    /// The newest revision that has been ready.
    pub latest_ready: Option<String>,
    /// The revision that last took all of the traffic (or the stable side of a canary).
    pub latest_rolled_out: Option<String>,
    /// The rolled-out revision before it.
    pub previous_rolled_out: Option<String>,
}

/// One line of the traffic split.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// The revision.
    pub revision_name: String,
    /// Its share of requests, 0 to 100.
    pub percent: u32,
    /// `latest` or `prev`, as KServe tags them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// True for the latest ready revision.
    pub latest_revision: bool,
}

impl Rollout {
    /// Records that `revision` became ready, given the service's canary percent, and
    /// advances the rolled-out revisions as KServe does: without a canary (or at 100%)
    /// the latest ready revision becomes the rolled-out one.
    pub fn revision_ready(&mut self, revision: &str, canary_percent: Option<u32>) {
        if self.latest_created.as_deref() != Some(revision) {
            return; // an older revision coming back: nothing changes
        }
        self.latest_ready = Some(revision.to_owned());
        let full = canary_percent.is_none_or(|p| p >= 100) || self.latest_rolled_out.is_none();
        if full {
            self.roll_out(revision);
        }
    }

    /// Makes `revision` the rolled-out one (promotion).
    pub fn roll_out(&mut self, revision: &str) {
        if self.latest_rolled_out.as_deref() != Some(revision) {
            self.previous_rolled_out = self.latest_rolled_out.take();
            self.latest_rolled_out = Some(revision.to_owned());
        }
    }

    /// The split for a given canary percent.
    pub fn traffic(&self, canary_percent: Option<u32>) -> Vec<TrafficTarget> {
        let target = |name: &str, percent: u32, tag: Option<&str>| TrafficTarget {
            revision_name: name.to_owned(),
            percent,
            tag: tag.map(str::to_owned),
            latest_revision: self.latest_ready.as_deref() == Some(name),
        };
        let latest = self.latest_ready.as_deref();
        let Some(stable) = self.latest_rolled_out.as_deref() else {
            return self
                .latest_created
                .as_deref()
                .map(|first| vec![target(first, 100, Some("latest"))])
                .unwrap_or_default();
        };
        match (latest, canary_percent) {
            (Some(latest), Some(p)) if latest != stable => {
                let p = p.min(100);
                vec![
                    target(latest, p, Some("latest")),
                    target(stable, 100 - p, Some("prev")),
                ]
            }
            _ => {
                let mut split = vec![target(stable, 100, Some("latest"))];
                if let Some(prev) = self.previous_rolled_out.as_deref() {
                    split.push(target(prev, 0, Some("prev")));
                }
                split
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(r: &mut Rollout, name: &str) {
        r.latest_created = Some(name.to_owned());
    }

    fn percents(t: &[TrafficTarget]) -> Vec<(&str, u32, Option<&str>)> {
        t.iter()
            .map(|t| (t.revision_name.as_str(), t.percent, t.tag.as_deref()))
            .collect()
    }

    #[test]
    fn the_first_ready_revision_takes_all_traffic() {
        let mut r = Rollout::default();
        created(&mut r, "m-00001");
        assert_eq!(
            percents(&r.traffic(None)),
            vec![("m-00001", 100, Some("latest"))],
            "before anything is ready, requests wait for the first revision"
        );
        r.revision_ready("m-00001", Some(10));
        assert_eq!(
            percents(&r.traffic(Some(10))),
            vec![("m-00001", 100, Some("latest"))]
        );
    }

    #[test]
    fn without_canary_the_old_revision_serves_until_the_new_one_is_ready() {
        let mut r = Rollout::default();
        created(&mut r, "m-00001");
        r.revision_ready("m-00001", None);
        created(&mut r, "m-00002");
        assert_eq!(
            percents(&r.traffic(None)),
            vec![("m-00001", 100, Some("latest"))]
        );
        r.revision_ready("m-00002", None);
        assert_eq!(
            percents(&r.traffic(None)),
            vec![
                ("m-00002", 100, Some("latest")),
                ("m-00001", 0, Some("prev"))
            ]
        );
        assert_eq!(r.previous_rolled_out.as_deref(), Some("m-00001"));
    }

    #[test]
    fn canary_splits_then_promotes_or_rolls_back() {
        let mut r = Rollout::default();
        created(&mut r, "m-00001");
        r.revision_ready("m-00001", None);
        created(&mut r, "m-00002");
        r.revision_ready("m-00002", Some(10));
        assert_eq!(
            percents(&r.traffic(Some(10))),
            vec![
                ("m-00002", 10, Some("latest")),
                ("m-00001", 90, Some("prev"))
            ]
        );
        // Rollback: canary 0.
        assert_eq!(
            percents(&r.traffic(Some(0))),
            vec![
                ("m-00002", 0, Some("latest")),
                ("m-00001", 100, Some("prev"))
            ]
        );
        // Promote.
        r.roll_out("m-00002");
        assert_eq!(
            percents(&r.traffic(None)),
            vec![
                ("m-00002", 100, Some("latest")),
                ("m-00001", 0, Some("prev"))
            ]
        );
    }

    #[test]
    fn a_stale_revision_becoming_ready_changes_nothing() {
        let mut r = Rollout::default();
        created(&mut r, "m-00001");
        r.revision_ready("m-00001", None);
        created(&mut r, "m-00002");
        r.revision_ready("m-00001", None);
        assert_eq!(r.latest_ready.as_deref(), Some("m-00001"));
        assert_eq!(r.latest_rolled_out.as_deref(), Some("m-00001"));
    }
}
