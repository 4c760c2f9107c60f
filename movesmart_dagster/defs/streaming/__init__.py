"""The supervised streaming job, the table assets it materializes, and its supervisor sensor."""
