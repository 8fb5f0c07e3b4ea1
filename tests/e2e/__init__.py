"""Dashboard tests: AppTest and the browser.

A package, so that its conftest.py is imported as `e2e.conftest` and does not take the module
name `conftest` that tests/integration imports its helpers from (`from conftest import …`).
"""
