//! Which server node a user talks to: its home node (`idx % nodes`) first,
//! the next one in the list once its socket is lost or its node stops answering.

/// A user's current node, as an index into the run's node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    current: usize,
    nodes: usize,
}

impl Route {
    /// User `idx` starts on node `idx % nodes` (round robin over the nodes).
    pub fn home(idx: usize, nodes: usize) -> Self {
        let nodes = nodes.max(1);
        Self {
            current: idx % nodes,
            nodes,
        }
    }

    pub fn node(self) -> usize {
        self.current
    }

    /// Moves to the next node (`(i + 1) % nodes`); with one node, stays.
    pub fn fail_over(&mut self) {
        self.current = (self.current + 1) % self.nodes;
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
    fn a_single_node_is_never_left() {
        let mut r = Route::home(41, 1);
        r.fail_over();
        assert_eq!(r.node(), 0);
        assert_eq!(Route::home(3, 0).node(), 0);
    }
}
