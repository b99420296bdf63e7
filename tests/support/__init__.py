"""Helpers the tests share (servers, processes, settings per backend, apps); no tests here."""
