//! Which server node a user talks to: its home node (`idx % nodes`) first; once its
//! socket is lost or its node stops answering, another node, spread so that the users
//! of a dead node land evenly on all the others (sending them all to the next node
//! would put two nodes' sessions on one process, past its 20,000 open files).

/// A user's current node, as an index into the run's node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    current: usize,
    nodes: usize,
    /// The first move's distance, 1..nodes-1, different among a node's users.
    spread: usize,
    moved: bool,
}

impl Route {
    /// User `idx` starts on node `idx % nodes` (round robin over the nodes).
    pub fn home(idx: usize, nodes: usize) -> Self {
        let nodes = nodes.max(1);
        Self {
            current: idx % nodes,
            nodes,
            spread: 1 + (idx / nodes) % (nodes - 1).max(1),
            moved: false,
        }
    }

    pub fn node(self) -> usize {
        self.current
    }

    /// Moves to another node: first by the user's spread, then to the next one (so
    /// every node is tried); with one node, stays.
    pub fn fail_over(&mut self) {
        let step = if self.moved { 1 } else { self.spread };
        self.moved = true;
        self.current = (self.current + step) % self.nodes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_spread_round_robin_over_the_nodes() {
        let homes: Vec<usize> = (0..7).map(|i| Route::home(i, 3).node()).collect();
        assert_eq!(homes, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn failing_over_moves_to_the_next_node_and_wraps() {
        let mut r = Route::home(5, 6);
        r.fail_over();
        assert_eq!(r.node(), 0);
        r.fail_over();
        assert_eq!(r.node(), 1);
    }

    #[test]
    fn a_dead_nodes_users_spread_over_every_other_node() {
        let mut landed = std::collections::BTreeMap::new();
        for idx in (0..600).filter(|i| i % 6 == 2) {
            let mut r = Route::home(idx, 6);
            r.fail_over();
            *landed.entry(r.node()).or_insert(0) += 1;
        }
        assert_eq!(landed.keys().copied().collect::<Vec<_>>(), [0, 1, 3, 4, 5]);
        assert!(landed.values().all(|&n| n == 20), "{landed:?}");
    }

    #[test]
    fn a_single_node_is_never_left() {
        let mut r = Route::home(41, 1);
        r.fail_over();
        assert_eq!(r.node(), 0);
        assert_eq!(Route::home(3, 0).node(), 0);
    }
}
