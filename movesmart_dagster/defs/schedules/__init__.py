"""Every schedule of the code location, in one list (each is defined beside what it runs)."""
