-- A minor told through their representative who comes of age before the
-- account is activated is told again, themselves: the account goes back to
-- pending for a new round of notices.
INSERT INTO account_transition VALUES ('notified', 'pending');
