"""The service: the sync loop (`sync`), the customers' ledger books it keeps (`books`), the
rules it works by (`rules`) and the daemon around it (`daemon`)."""
