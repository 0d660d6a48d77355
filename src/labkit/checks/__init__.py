"""Independent checks that lab tests use to judge a learner's work.

Each check computes the answer from first principles (a policy is evaluated, a
lifecycle is simulated), so a test never compares a learner's text with a string.
"""
