"""Machinery behind the lessons: students need not read it."""
