-- Deleting a region now retires its own operational CA in the same
-- transaction (docs/regions.md, "Deleting a region"). Before, the CA of a
-- deleted region stayed active, and a region created again under the same
-- name took it over silently. This retires those left-over CAs the way a
-- deletion now does: no longer signing, still trusted (and answered for by
-- CRL and OCSP) until the CA itself expires, so certificates it issued
-- keep verifying until they expire or are revoked.
--
-- A device's home region needs no new index: it is an attribute, and
-- device_attrs' primary key (key, value, device_id) already finds a
-- region's devices (store.regionHomedQuery, TestRegionDevicesUseIndex).
UPDATE cas
SET status = 'retiring', retire_at = not_after
WHERE purpose = 'regional'
  AND status = 'active'
  AND factory NOT IN (SELECT name FROM regions);
