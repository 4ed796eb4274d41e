//! Recorded-response tests of the adapter (aws-smithy-mocks).
