"""The process exit codes every command and the dashboard use."""

EXIT_OK = 0
EXIT_FAIL = 1  # something failed; the message says what
EXIT_USAGE = 2  # a bad option or setting
EXIT_BUSY = 3  # another agent holds the data directory
