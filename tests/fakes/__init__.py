"""Fakes the tests share: real servers on the loopback interface instead of mock objects."""
