// FAISS 1.12 (vendored by faiss-sys 0.7) reads an IndexIVFPQFastScan without setting its
// `fine_quantizer` (the default constructor leaves it null and read_index never sets it), so
// reconstruct / sa_decode dereference null. The quantizer is the index's own `pq`: point it
// there. Remove once faiss-sys vendors a FAISS that sets it on read.
#include <faiss/IndexIVFPQFastScan.h>

extern "C" int lwdec_repair_ivfpq_fastscan(void* index) {
    auto* fast = dynamic_cast<faiss::IndexIVFPQFastScan*>(static_cast<faiss::Index*>(index));
    if (fast == nullptr) {
        return 0;
    }
    fast->fine_quantizer = &fast->pq;
    return 1;
}
