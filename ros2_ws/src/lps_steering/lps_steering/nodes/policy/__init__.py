"""The policy node's parts, one job per module; `lps_steering.nodes.policy_node` assembles them."""
