"""Pure validation code: the table schema, profiling, protections, expectations, metrics, gate."""
