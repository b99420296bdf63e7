"""The rules of docservice: validation, versions, soft delete, paging, etags, page tokens.

`service.DocumentService` is the one place a rule lives; `repository.DocumentRepository` is the
storage interface it needs (implemented in `docservice.storage`). May import the generated
messages (`docservice._proto`) and `docservice.settings`; never `docservice.grpc`,
`docservice.storage`, a database or cache driver, or grpclib (import-linter checks).
"""
