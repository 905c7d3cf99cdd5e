//! The whole audit chain, for `sever audit verify` and exports. The
//! [`AdminStore`] port lists the chain a page at a time; these page through
//! all of it, so they work on any store and hold at most one page (or, for
//! [`read_audit_chain`], the result) in memory.

use sever_core::admin::{
    audit_hash, AdminStore, AuditQuery, AuditRecord, ChainBreak, GENESIS_HASH,
};
use sever_core::StoreError;

/// Records asked for per page: the stores' maximum.
const PAGE: u32 = 10_000;

/// Every audit record of every tenant, in `seq` order.
pub async fn read_audit_chain(store: &dyn AdminStore) -> Result<Vec<AuditRecord>, StoreError> {
    let mut all: Vec<AuditRecord> = Vec::new();
    loop {
        let page = store
            .list_audit(&AuditQuery {
                tenant_id: None,
                after_seq: all.last().map(|r| r.seq),
                limit: PAGE,
            })
            .await?;
        // Only an empty page ends the chain: a store may cap pages below PAGE.
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

/// Check the whole chain from its first record, a page at a time, with the
/// same rules as [`sever_core::admin::verify_chain`]: the outer error is the
/// store failing, the inner one where the chain first breaks. `Ok(Ok(n))`:
/// all `n` records are intact.
pub async fn verify_audit(store: &dyn AdminStore) -> Result<Result<usize, ChainBreak>, StoreError> {
    let mut prev = GENESIS_HASH.to_string();
    let mut last_seq = 0;
    let mut count = 0;
    loop {
        let page = store
            .list_audit(&AuditQuery {
                tenant_id: None,
                after_seq: (last_seq > 0).then_some(last_seq),
                limit: PAGE,
            })
            .await?;
        if page.is_empty() {
            return Ok(Ok(count));
        }
        for r in page {
            if r.seq != last_seq + 1 {
                return Ok(Err(ChainBreak::Gap {
                    after: last_seq,
                    seq: r.seq,
                }));
            }
            if r.prev_hash != prev {
                return Ok(Err(ChainBreak::Broken { seq: r.seq }));
            }
            if audit_hash(&r.prev_hash, r.seq, &r.event) != r.hash {
                return Ok(Err(ChainBreak::Edited { seq: r.seq }));
            }
            prev = r.hash;
            last_seq = r.seq;
            count += 1;
        }
    }
}
