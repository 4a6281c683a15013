"""Notifications: a run's failures, warnings, deploys and recoveries, sent to webhooks and email."""
