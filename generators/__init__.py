"""Pure generator code: one interface, one shared encoder, one module per family. No Prefect."""
