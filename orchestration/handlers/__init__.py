"""The demo workers. Importing this package registers every one of them.

- invoice.*: extract, validate, post and reverse_posting (invoice-approval)
- kyc.*: normalize, screen, open_account and close_account (kyc-screening)
- moderation.*: classify, apply and revert (content-moderation)
"""

from orchestration.handlers import invoice, kyc, moderation

__all__ = ["invoice", "kyc", "moderation"]
