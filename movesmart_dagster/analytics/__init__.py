"""Daily analytics over the tables: pure Spark computations (`compute`) and charts (`plots`)."""
