# The projects below are task data (copied into sandboxes), not part of rlvr's own test suite.
collect_ignore_glob = ["projects/*"]
