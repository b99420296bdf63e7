"""The MongoDB backend on Beanie 2: the models and indexes in `models.py`, the repository and
its write protocol (without multi-document transactions) in `repository.py`.

May import `docservice.core`, `docservice._proto` and `docservice.storage` (its shared
modules), never `docservice.grpc`.
"""
