//! Instances by tag or by id, as machines to register in the agent's inventory scope.
