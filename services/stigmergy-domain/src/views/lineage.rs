//! Walking the flow graph: upstream lineage and downstream where-used, breadth first, with a
//! visited set and a depth limit, never enumerating paths. Recycling loops end (a node is
//! expanded once) and a hub resource costs one visit however many paths lead to it. The graph
//! is read through a function the caller supplies (one call per level), so the walk itself does
//! no I/O.

use std::collections::HashSet;

use crate::ids::Iri;
use crate::views::index::Flow;

/// Which way to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a resource to what it was made from.
    Upstream,
    /// From a resource to what was made from it.
    Downstream,
}

/// The part of the graph a walk reached.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lineage {
    /// Every resource reached, with its distance from the start (the start itself at 0), in the
    /// order reached.
    pub nodes: Vec<(Iri, u32)>,
    /// Every flow between reached resources that the walk followed.
    pub edges: Vec<Flow>,
    /// Whether the depth limit stopped the walk before the graph ended.
    pub truncated: bool,
}

/// Walks from `start` up to `max_depth` levels. `neighbours(direction, frontier)` returns the flows
/// into (upstream) or out of (downstream) the resources of the frontier.
pub fn walk<E>(
    start: &Iri,
    direction: Direction,
    max_depth: u32,
    mut neighbours: impl FnMut(Direction, &[Iri]) -> Result<Vec<Flow>, E>,
) -> Result<Lineage, E> {
    let mut visited: HashSet<Iri> = HashSet::from([start.clone()]);
    let mut lineage = Lineage {
        nodes: vec![(start.clone(), 0)],
        ..Lineage::default()
    };
    let mut frontier = vec![start.clone()];
    let mut depth = 0;
    while !frontier.is_empty() {
        let flows = neighbours(direction, &frontier)?;
        if depth == max_depth {
            lineage.truncated = !flows.is_empty();
            break;
        }
        depth += 1;
        let mut next = Vec::new();
        for flow in flows {
            let reached = match direction {
                Direction::Upstream => &flow.from,
                Direction::Downstream => &flow.to,
            };
            if visited.insert(reached.clone()) {
                lineage.nodes.push((reached.clone(), depth));
                next.push(reached.clone());
            }
            lineage.edges.push(flow);
        }
        frontier = next;
    }
    Ok(lineage)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::views::index::FlowKind;

    fn iri(name: &str) -> Iri {
        Iri::parse(format!("https://test.example/{name}")).expect("a test IRI")
    }

    /// The only caller of `walk`: over the graph `edges` (from → to), walking from `start`, the
    /// resources reached with their depth, and whether the limit cut the walk.
    fn check(
        edges: &[(&str, &str)],
        start: &str,
        direction: Direction,
        depth: u32,
        expected: &[(&str, u32)],
        truncated: bool,
    ) {
        let graph: Vec<Flow> = edges
            .iter()
            .map(|(from, to)| Flow {
                from: iri(from),
                to: iri(to),
                kind: FlowKind::Input,
                quantity: None,
            })
            .collect();
        let mut calls = 0;
        let lineage = walk(&iri(start), direction, depth, |direction, frontier| {
            calls += 1;
            Ok::<_, Infallible>(
                graph
                    .iter()
                    .filter(|f| match direction {
                        Direction::Upstream => frontier.contains(&f.to),
                        Direction::Downstream => frontier.contains(&f.from),
                    })
                    .cloned()
                    .collect(),
            )
        })
        .unwrap_or_else(|never| match never {});
        let got: Vec<(String, u32)> = lineage
            .nodes
            .iter()
            .map(|(n, d)| (n.to_string(), *d))
            .collect();
        let want: Vec<(String, u32)> = expected
            .iter()
            .map(|(n, d)| (iri(n).to_string(), *d))
            .collect();
        assert_eq!(got, want);
        assert_eq!(lineage.truncated, truncated);
        assert!(calls <= depth as usize + 1, "one read per level");
    }

    #[test]
    fn upstream_reaches_every_input_once_at_its_shortest_depth() {
        let graph = [
            ("ore", "lot"),
            ("lot", "part"),
            ("lot", "batch"),
            ("part", "batch"),
        ];
        check(
            &graph,
            "batch",
            Direction::Upstream,
            10,
            &[("batch", 0), ("lot", 1), ("part", 1), ("ore", 2)],
            false,
        );
        check(
            &graph,
            "ore",
            Direction::Downstream,
            10,
            &[("ore", 0), ("lot", 1), ("part", 2), ("batch", 2)],
            false,
        );
    }

    #[test]
    fn a_recycling_loop_ends_and_the_depth_limit_says_it_cut() {
        let graph = [
            ("flakes", "batch"),
            ("batch", "flakes-2"),
            ("flakes-2", "batch-2"),
            ("batch-2", "flakes"),
        ];
        check(
            &graph,
            "batch",
            Direction::Upstream,
            10,
            &[("batch", 0), ("flakes", 1), ("batch-2", 2), ("flakes-2", 3)],
            false,
        );
        check(
            &graph,
            "batch",
            Direction::Upstream,
            2,
            &[("batch", 0), ("flakes", 1), ("batch-2", 2)],
            true,
        );
        check(
            &graph,
            "batch",
            Direction::Upstream,
            0,
            &[("batch", 0)],
            true,
        );
    }

    #[test]
    fn a_hub_is_visited_once_whatever_the_number_of_paths() {
        let mut graph: Vec<(String, String)> = Vec::new();
        for i in 0..500 {
            graph.push(("hub".into(), format!("b{i}")));
            graph.push((format!("b{i}"), "product".into()));
        }
        let edges: Vec<(&str, &str)> = graph
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut expected: Vec<(String, u32)> = vec![("product".into(), 0)];
        expected.extend((0..500).map(|i| (format!("b{i}"), 1)));
        expected.push(("hub".into(), 2));
        let expected: Vec<(&str, u32)> = expected.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        check(&edges, "product", Direction::Upstream, 50, &expected, false);
    }
}
