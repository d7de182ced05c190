"""Hypothesis properties and a state machine proving the recorders' guarantees."""
