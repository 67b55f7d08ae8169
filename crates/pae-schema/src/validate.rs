//! Plan validation: checks that run before any step executes.

use std::collections::HashMap;

use crate::Plan;

/// Bounds a plan must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// The fewest steps accepted (at least 1: an empty plan is never valid).
    pub min_steps: usize,
    /// The most steps accepted.
    pub max_steps: usize,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            min_steps: 1,
            max_steps: 100,
        }
    }
}

/// Why a plan was rejected before execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanValidationError {
    /// The plan has no step.
    #[error("the plan is empty")]
    Empty,
    /// Fewer steps than the lower bound.
    #[error("the plan has {count} steps, fewer than the minimum of {min}")]
    TooFewSteps {
        /// Steps in the plan.
        count: usize,
        /// The lower bound.
        min: usize,
    },
    /// More steps than the upper bound.
    #[error("the plan has {count} steps, more than the maximum of {max}")]
    TooManySteps {
        /// Steps in the plan.
        count: usize,
        /// The upper bound.
        max: usize,
    },
    /// A step whose text is empty or only whitespace.
    #[error("step {} is empty", index + 1)]
    EmptyStep {
        /// 0-based position of the step.
        index: usize,
    },
    /// Two steps share an id.
    #[error("step id {id:?} is used by more than one step")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// A step depends on an id no step has.
    #[error("step {} depends on {id:?}, which is not a step of the plan", index + 1)]
    UnknownDependency {
        /// 0-based position of the dependent step.
        index: usize,
        /// The unknown id.
        id: String,
    },
    /// The dependencies form a cycle (a step depending on itself included).
    #[error("the step dependencies form a cycle: {}", ids.join(" -> "))]
    Cycle {
        /// The ids around the cycle, the first repeated at the end.
        ids: Vec<String>,
    },
}

impl Plan {
    /// Checks the plan: its size against `limits`, empty steps, duplicate
    /// ids, unknown dependencies and cycles.
    ///
    /// # Errors
    /// The first problem found, as a [`PlanValidationError`].
    pub fn validate(&self, limits: &PlanLimits) -> Result<(), PlanValidationError> {
        let count = self.steps.len();
        if count == 0 {
            return Err(PlanValidationError::Empty);
        }
        if count < limits.min_steps {
            return Err(PlanValidationError::TooFewSteps {
                count,
                min: limits.min_steps,
            });
        }
        if count > limits.max_steps {
            return Err(PlanValidationError::TooManySteps {
                count,
                max: limits.max_steps,
            });
        }
        if let Some(index) = self.steps.iter().position(|s| s.value.trim().is_empty()) {
            return Err(PlanValidationError::EmptyStep { index });
        }
        // Steps named only by their positions, none depending on another
        // (a plain list, the common case): no id can repeat and there is
        // nothing to order, so the map of ids is not built.
        if self
            .steps
            .iter()
            .all(|s| s.id.is_none() && s.depends_on.is_empty())
        {
            return Ok(());
        }
        self.topological_order().map(|_| ())
    }

    /// For every step, the 0-based positions of the steps it depends on.
    ///
    /// A dependency names a step by its id; a step without an id is named by
    /// its 1-based position ("2"). Repeated dependencies are listed once.
    ///
    /// # Errors
    /// [`PlanValidationError::DuplicateId`] or
    /// [`PlanValidationError::UnknownDependency`].
    pub fn dependency_indices(&self) -> Result<Vec<Vec<usize>>, PlanValidationError> {
        let mut by_key: HashMap<String, usize> = HashMap::with_capacity(self.steps.len());
        for index in 0..self.steps.len() {
            let key = self.step_key(index).unwrap_or_default();
            if by_key.insert(key.clone(), index).is_some() {
                return Err(PlanValidationError::DuplicateId { id: key });
            }
        }
        self.steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let mut deps: Vec<usize> = Vec::with_capacity(step.depends_on.len());
                for id in &step.depends_on {
                    let dep = by_key.get(id.trim()).copied().ok_or_else(|| {
                        PlanValidationError::UnknownDependency {
                            index,
                            id: id.clone(),
                        }
                    })?;
                    if !deps.contains(&dep) {
                        deps.push(dep);
                    }
                }
                Ok(deps)
            })
            .collect()
    }

    /// The step positions in an order where every step comes after the steps
    /// it depends on; among ready steps, plan order wins, so a plan without
    /// dependencies keeps its order.
    ///
    /// # Errors
    /// Whatever [`dependency_indices`](Self::dependency_indices) returns, or
    /// [`PlanValidationError::Cycle`].
    pub fn topological_order(&self) -> Result<Vec<usize>, PlanValidationError> {
        let deps = self.dependency_indices()?;
        let n = deps.len();
        let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (index, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(index);
            }
        }
        // A min-heap on position keeps plan order among ready steps.
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| remaining[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &j in &dependents[i] {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    ready.push(std::cmp::Reverse(j));
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        Err(PlanValidationError::Cycle {
            ids: self.find_cycle(&deps, &remaining),
        })
    }

    /// Walks dependencies from a step left unscheduled until a step repeats.
    fn find_cycle(&self, deps: &[Vec<usize>], remaining: &[usize]) -> Vec<String> {
        let Some(start) = remaining.iter().position(|&r| r > 0) else {
            return Vec::new();
        };
        let mut path = vec![start];
        let mut current = start;
        // Every unscheduled step has an unscheduled dependency.
        while let Some(&next) = deps[current].iter().find(|&&d| remaining[d] > 0) {
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut ids: Vec<String> = path[pos..]
                    .iter()
                    .map(|&i| self.step_key(i).unwrap_or_default())
                    .collect();
                ids.push(self.step_key(next).unwrap_or_default());
                // Report the cycle in dependency order: a -> b means b runs before a.
                ids.reverse();
                return ids;
            }
            path.push(next);
            current = next;
        }
        path.iter()
            .map(|&i| self.step_key(i).unwrap_or_default())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Step;

    fn limits() -> PlanLimits {
        PlanLimits::default()
    }

    #[test]
    fn accepts_plain_and_dependent_plans() {
        assert_eq!(Plan::new(["a", "b"]).validate(&limits()), Ok(()));
        let plan = Plan::new([
            Step::new("a").with_id("a"),
            Step::new("b").with_id("b"),
            Step::new("c").with_id("c").with_depends_on(["a", "b"]),
        ]);
        assert_eq!(plan.validate(&limits()), Ok(()));
        assert_eq!(
            plan.dependency_indices().unwrap(),
            vec![vec![], vec![], vec![0, 1]]
        );
    }

    #[test]
    fn rejects_size_and_empty_steps() {
        assert_eq!(
            Plan::default().validate(&limits()),
            Err(PlanValidationError::Empty)
        );
        let small = PlanLimits {
            min_steps: 1,
            max_steps: 1,
        };
        assert_eq!(
            Plan::new(["a", "b"]).validate(&small),
            Err(PlanValidationError::TooManySteps { count: 2, max: 1 })
        );
        let at_least_three = PlanLimits {
            min_steps: 3,
            max_steps: 9,
        };
        assert_eq!(
            Plan::new(["a", "b"]).validate(&at_least_three),
            Err(PlanValidationError::TooFewSteps { count: 2, min: 3 })
        );
        assert_eq!(
            Plan::new(["a", "  "]).validate(&limits()),
            Err(PlanValidationError::EmptyStep { index: 1 })
        );
    }

    #[test]
    fn rejects_unknown_and_duplicate_ids() {
        let plan = Plan::new([Step::new("a"), Step::new("b").with_depends_on(["7"])]);
        assert_eq!(
            plan.validate(&limits()),
            Err(PlanValidationError::UnknownDependency {
                index: 1,
                id: "7".into()
            })
        );
        let plan = Plan::new([Step::new("a").with_id("x"), Step::new("b").with_id("x")]);
        assert_eq!(
            plan.validate(&limits()),
            Err(PlanValidationError::DuplicateId { id: "x".into() })
        );
    }

    #[test]
    fn positions_name_steps_without_ids() {
        let plan = Plan::new([
            Step::new("a"),
            Step::new("b"),
            Step::new("c").with_depends_on(["1", "2"]),
        ]);
        assert_eq!(plan.topological_order().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn finds_cycles_including_self_loops() {
        let plan = Plan::new([
            Step::new("a").with_id("a").with_depends_on(["c"]),
            Step::new("b").with_id("b").with_depends_on(["a"]),
            Step::new("c").with_id("c").with_depends_on(["b"]),
        ]);
        match plan.validate(&limits()) {
            Err(PlanValidationError::Cycle { ids }) => {
                assert_eq!(ids.len(), 4);
                assert_eq!(ids.first(), ids.last());
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
        let selfish = Plan::new([Step::new("a").with_id("a").with_depends_on(["a"])]);
        assert_eq!(
            selfish.validate(&limits()),
            Err(PlanValidationError::Cycle {
                ids: vec!["a".into(), "a".into()]
            })
        );
    }

    #[test]
    fn topological_order_prefers_plan_order() {
        let plan = Plan::new([
            Step::new("final").with_id("f").with_depends_on(["x", "y"]),
            Step::new("x").with_id("x"),
            Step::new("y").with_id("y"),
        ]);
        assert_eq!(plan.topological_order().unwrap(), vec![1, 2, 0]);
    }
}
