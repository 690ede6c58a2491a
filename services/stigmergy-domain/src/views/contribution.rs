//! The contribution method (the value equation), as pure functions of the events and of the
//! attributions of what a thing was made from. Who gets which share of a design, a fork, a batch
//! or a lot; the shares of one attribution always sum to 1. See `docs/views.md`. No I/O: the
//! caller walks the graph and hands in the attributions of parents and inputs.

use std::collections::BTreeMap;

use crate::ids::Iri;
use crate::payload::{ContributionRecorded, EffortUnit, Labour};

/// The name and version of the method, published with every attribution.
pub const METHOD: &str = "stigmergy-value-equation/1";

/// How much of an attribution each agent holds; the shares sum to 1.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Attribution(BTreeMap<Iri, f64>);

impl Attribution {
    /// The same agents with the same shares, up to floating-point noise.
    pub fn same_as(&self, other: &Attribution) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((a, x), (b, y))| a == b && crate::views::footprint::close(*x, *y))
    }

    /// Everything to one agent.
    pub fn sole(agent: &Iri) -> Self {
        Self(BTreeMap::from([(agent.clone(), 1.0)]))
    }

    /// Shares proportional to the given weights (summed per agent); empty when no weight is
    /// positive.
    pub fn proportional<'a>(weights: impl IntoIterator<Item = (&'a Iri, f64)>) -> Self {
        let mut summed: BTreeMap<Iri, f64> = BTreeMap::new();
        for (agent, weight) in weights {
            if weight > 0.0 && weight.is_finite() {
                *summed.entry(agent.clone()).or_default() += weight;
            }
        }
        let total: f64 = summed.values().sum();
        if total <= 0.0 {
            return Self::default();
        }
        Self(
            summed
                .into_iter()
                .map(|(agent, weight)| (agent, weight / total))
                .collect(),
        )
    }

    /// The weighted mix of several attributions; parts that are empty or weigh nothing are left
    /// out and the others' weights renormalised.
    pub fn mix(parts: &[(f64, &Attribution)]) -> Self {
        let present: Vec<&(f64, &Attribution)> = parts
            .iter()
            .filter(|(weight, part)| *weight > 0.0 && !part.is_empty())
            .collect();
        let total: f64 = present.iter().map(|(weight, _)| weight).sum();
        if total <= 0.0 {
            return Self::default();
        }
        let mut mixed: BTreeMap<Iri, f64> = BTreeMap::new();
        for (weight, part) in present {
            for (agent, share) in &part.0 {
                *mixed.entry(agent.clone()).or_default() += weight / total * share;
            }
        }
        Self(mixed)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn share_of(&self, agent: &Iri) -> f64 {
        self.0.get(agent).copied().unwrap_or(0.0)
    }

    /// The shares, largest first (ties by agent id), for publication.
    pub fn ranked(&self) -> Vec<(Iri, f64)> {
        let mut shares: Vec<(Iri, f64)> = self.0.iter().map(|(a, s)| (a.clone(), *s)).collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        shares
    }

    /// The sum of the shares: 1 for any non-empty attribution (within rounding), 0 when empty.
    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }
}

/// The configurable parts of the value equation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContributionConfig {
    /// Weight of the design's attribution in a batch's.
    pub design_weight: f64,
    /// Weight of the fabrication labour (and contributions recorded to the batch).
    pub labour_weight: f64,
    /// Weight of the inputs' attributions.
    pub inputs_weight: f64,
    /// Hours one effort point counts for.
    pub hours_per_point: f64,
}

impl Default for ContributionConfig {
    fn default() -> Self {
        Self {
            design_weight: 0.3,
            labour_weight: 0.5,
            inputs_weight: 0.2,
            hours_per_point: 1.0,
        }
    }
}

fn effort_hours(contribution: &ContributionRecorded, config: &ContributionConfig) -> f64 {
    let amount = contribution.effort.amount.get();
    match contribution.effort.unit {
        EffortUnit::Hours => amount,
        EffortUnit::Points => amount * config.hours_per_point,
    }
}

/// A design's own attribution: its contributors' effort shares, or everything to the organisation
/// that published it when no contribution is recorded.
pub fn design(
    publisher: &Iri,
    contributions: &[&ContributionRecorded],
    config: &ContributionConfig,
) -> Attribution {
    let own = Attribution::proportional(
        contributions
            .iter()
            .map(|c| (&c.contributor.id, effort_hours(c, config))),
    );
    if own.is_empty() {
        Attribution::sole(publisher)
    } else {
        own
    }
}

/// A fork's attribution: `(1 − upstreamShare) · own + upstreamShare · parent`. An unknown parent
/// leaves the fork with its own shares.
pub fn fork(own: &Attribution, upstream_share: f64, parent: Option<&Attribution>) -> Attribution {
    match parent {
        Some(parent) => Attribution::mix(&[(1.0 - upstream_share, own), (upstream_share, parent)]),
        None => own.clone(),
    }
}

/// One input of a batch as the value equation sees it: how much it weighs in the batch, and its
/// attribution (none when unknown).
#[derive(Clone, Debug)]
pub struct InputShare<'a> {
    /// Kilograms when every input of the batch is a mass, else 1 for each input.
    pub weight: f64,
    pub attribution: Option<&'a Attribution>,
}

/// A batch's attribution: `design_weight · design + labour_weight · labour + inputs_weight ·
/// inputs`, where labour is the fabrication hours per agent plus the effort of contributions
/// recorded to the batch, and inputs are the inputs' attributions weighted as given. Parts that
/// are missing renormalise the others; a batch with nothing known is attributed to its maker.
pub fn batch(
    maker: &Iri,
    design: Option<&Attribution>,
    labour: &[Labour],
    contributions: &[&ContributionRecorded],
    inputs: &[InputShare<'_>],
    config: &ContributionConfig,
) -> Attribution {
    let labour = Attribution::proportional(
        labour.iter().map(|l| (&l.agent, l.hours.get())).chain(
            contributions
                .iter()
                .map(|c| (&c.contributor.id, effort_hours(c, config))),
        ),
    );
    let known: Vec<(f64, &Attribution)> = inputs
        .iter()
        .filter_map(|i| i.attribution.map(|a| (i.weight, a)))
        .collect();
    let inputs = Attribution::mix(&known);
    let empty = Attribution::default();
    let mixed = Attribution::mix(&[
        (config.design_weight, design.unwrap_or(&empty)),
        (config.labour_weight, &labour),
        (config.inputs_weight, &inputs),
    ]);
    if mixed.is_empty() {
        Attribution::sole(maker)
    } else {
        mixed
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn agent(name: &str) -> Iri {
        Iri::parse(format!("https://test.example/people/{name}")).expect("a test IRI")
    }

    fn contribution(name: &str, amount: f64, unit: &str) -> ContributionRecorded {
        serde_json::from_value(json!({
            "target": "https://test.example/design",
            "contributor": { "id": agent(name) },
            "kind": "design",
            "effort": { "amount": amount, "unit": unit },
        }))
        .expect("a valid contribution")
    }

    fn labour(name: &str, hours: f64) -> Labour {
        serde_json::from_value(json!({ "agent": agent(name), "hours": hours }))
            .expect("valid labour")
    }

    /// The only comparison of attributions: each expected agent's share within 1e-12, nobody
    /// else, and the shares summing to 1.
    fn check(got: &Attribution, expected: &[(&str, f64)]) {
        let got_shares = got.ranked();
        assert_eq!(got_shares.len(), expected.len(), "{got_shares:?}");
        for (name, share) in expected {
            let actual = got.share_of(&agent(name));
            assert!(
                (actual - share).abs() < 1e-12,
                "{name}: {actual} instead of {share} in {got_shares:?}"
            );
        }
        assert!(
            (got.total() - 1.0).abs() < 1e-9,
            "shares sum to {}",
            got.total()
        );
    }

    #[test]
    fn a_design_is_shared_by_effort_and_points_count_as_configured() {
        let config = ContributionConfig {
            hours_per_point: 2.0,
            ..ContributionConfig::default()
        };
        let ana = contribution("ana", 60.0, "hours");
        let ben = contribution("ben", 10.0, "points");
        let ana_again = contribution("ana", 20.0, "hours");
        check(
            &design(&agent("org"), &[&ana, &ben, &ana_again], &config),
            &[("ana", 0.8), ("ben", 0.2)],
        );
    }

    #[test]
    fn a_design_without_contributions_belongs_to_its_publisher() {
        check(
            &design(&agent("org"), &[], &ContributionConfig::default()),
            &[("org", 1.0)],
        );
    }

    #[test]
    fn a_fork_inherits_its_upstream_share_from_the_parent() {
        let parent = Attribution::proportional([(&agent("ana"), 3.0), (&agent("ben"), 1.0)]);
        let own = Attribution::sole(&agent("carla"));
        check(
            &fork(&own, 0.4, Some(&parent)),
            &[("carla", 0.6), ("ana", 0.3), ("ben", 0.1)],
        );
        check(&fork(&own, 0.4, None), &[("carla", 1.0)]);
        check(
            &fork(&Attribution::sole(&agent("ana")), 1.0, Some(&parent)),
            &[("ana", 0.75), ("ben", 0.25)],
        );
    }

    #[test]
    fn a_batch_mixes_design_labour_and_inputs_with_the_configured_weights() {
        let config = ContributionConfig::default();
        let design_attribution = Attribution::sole(&agent("ana"));
        let plywood = Attribution::sole(&agent("mill"));
        let pla = Attribution::sole(&agent("rfil"));
        let inputs = [
            InputShare {
                weight: 60.0,
                attribution: Some(&plywood),
            },
            InputShare {
                weight: 20.0,
                attribution: Some(&pla),
            },
        ];
        let got = batch(
            &agent("maker"),
            Some(&design_attribution),
            &[labour("carla", 24.0), labour("dani", 16.0)],
            &[],
            &inputs,
            &config,
        );
        check(
            &got,
            &[
                ("ana", 0.3),
                ("carla", 0.3),
                ("dani", 0.2),
                ("mill", 0.15),
                ("rfil", 0.05),
            ],
        );
    }

    #[test]
    fn missing_parts_of_a_batch_renormalise_the_others() {
        let config = ContributionConfig::default();
        let design_attribution = Attribution::sole(&agent("ana"));
        let unknown = [InputShare {
            weight: 1.0,
            attribution: None,
        }];
        let got = batch(
            &agent("maker"),
            Some(&design_attribution),
            &[labour("carla", 5.0)],
            &[],
            &unknown,
            &config,
        );
        check(&got, &[("ana", 0.3 / 0.8), ("carla", 0.5 / 0.8)]);
        check(
            &batch(&agent("maker"), None, &[], &[], &unknown, &config),
            &[("maker", 1.0)],
        );
    }

    #[test]
    fn contributions_recorded_to_a_batch_count_as_labour() {
        let config = ContributionConfig {
            design_weight: 0.0,
            inputs_weight: 0.0,
            ..ContributionConfig::default()
        };
        let review = contribution("eve", 4.0, "hours");
        let got = batch(
            &agent("maker"),
            None,
            &[labour("carla", 12.0)],
            &[&review],
            &[],
            &config,
        );
        check(&got, &[("carla", 0.75), ("eve", 0.25)]);
    }
}
