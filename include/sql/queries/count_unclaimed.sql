-- How many failures wait in the inbox unclaimed (the storm check of collect_failures).
SELECT count(*) FROM doctor.inbox WHERE claimed_by IS NULL
