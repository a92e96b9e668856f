// Reconstruction of stored vectors on the caller's thread, many in one call.
//
// `Index::reconstruct` of an IVF fast-scan index (the default bank's kind) goes through
// `sa_decode`, whose `#pragma omp parallel` opens an OpenMP region (of one thread) for every
// vector; it also allocates two buffers, unpacks each 4-bit code through a function call and
// copies the coarse centroid. Called from rayon's threads, every such call makes libgomp set
// up a team for that thread besides. The functions here do what `reconstruct` does with the
// same arithmetic (so the same bits: each component is the fine quantizer's centroid
// component plus the coarse centroid's, one float addition), without OpenMP, reading the
// codes and centroids in place. Other index kinds call their own `reconstruct` per id.
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/impl/ProductQuantizer.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/invlists/InvertedLists.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

namespace {

void write_message(char* message, size_t capacity, const char* text) {
    if (message == nullptr || capacity == 0) {
        return;
    }
    std::strncpy(message, text, capacity - 1);
    message[capacity - 1] = '\0';
}

// Runs `body` (which returns 0 or 1), turning any C++ exception into 1 with its message: no
// exception may cross into Rust.
template <typename Body>
int guarded(char* message, size_t capacity, Body body) {
    try {
        return body();
    } catch (const std::exception& e) {
        write_message(message, capacity, e.what());
    } catch (...) {
        write_message(message, capacity, "unknown C++ exception");
    }
    return 1;
}

// An IVF fast-scan index with a 4-bit product quantizer, decoded as
// IndexIVFFastScan::reconstruct_from_offset and sa_decode do.
struct FastScan {
    const faiss::IndexIVFFastScan* index = nullptr;
    const faiss::ProductQuantizer* pq = nullptr;
    const faiss::IndexFlat* flat = nullptr; // the coarse quantizer, when flat
    size_t d = 0;
    size_t dsub = 0;
    size_t bbs = 0;
    size_t block_bytes = 0;

    explicit FastScan(const faiss::Index* any) {
        const auto* fast = dynamic_cast<const faiss::IndexIVFFastScan*>(any);
        if (fast == nullptr) {
            return;
        }
        const auto* quantizer =
                dynamic_cast<const faiss::ProductQuantizer*>(fast->fine_quantizer);
        if (quantizer == nullptr || fast->nbits != 4 || quantizer->nbits != 4 ||
            quantizer->M != fast->M || quantizer->M * quantizer->dsub != size_t(fast->d) ||
            fast->bbs <= 0 || fast->invlists == nullptr) {
            return;
        }
        index = fast;
        pq = quantizer;
        flat = dynamic_cast<const faiss::IndexFlat*>(fast->quantizer);
        d = fast->d;
        dsub = quantizer->dsub;
        bbs = fast->bbs;
        block_bytes = ((fast->M2 + 1) / 2) * bbs;
    }

    bool applies() const {
        return index != nullptr;
    }

    // Where a vector's codes lie in its list (pq4_fast_scan.cpp: pq4_get_packed_element and
    // get_vector_specific_address): blocks of `bbs` vectors, each sub-quantizer pair a row of
    // `bbs` bytes, the codes of a pair 16 bytes apart, the high or low half of a byte.
    struct Place {
        const uint8_t* block;
        size_t base;
        bool high;
    };

    Place place(const uint8_t* list, int64_t offset) const {
        const size_t in_block = offset % bbs;
        const size_t v = in_block & 15;
        return Place{
                list + (offset / bbs) * block_bytes,
                v < 8 ? v << 1 : ((v - 8) << 1) + 1,
                in_block > 15};
    }

    // The coarse centroid of a list, in place when the quantizer is flat, else copied to
    // `scratch`; null without residuals.
    const float* coarse(int64_t list_no, float* scratch) const {
        if (!index->by_residual) {
            return nullptr;
        }
        if (flat != nullptr && list_no < flat->ntotal) {
            return flat->get_xb() + list_no * d;
        }
        index->quantizer->reconstruct(list_no, scratch);
        return scratch;
    }

    void prefetch(const Place& p, int64_t list_no) const {
        for (size_t row = 0; row < (index->M + 1) / 2; row++) {
            __builtin_prefetch(p.block + row * bbs + p.base);
        }
        if (flat != nullptr && index->by_residual && list_no < flat->ntotal) {
            const float* c = flat->get_xb() + list_no * d;
            for (size_t j = 0; j < d; j += 16) {
                __builtin_prefetch(c + j);
            }
        }
    }

    void decode(const Place& p, const float* coarse, float* x) const {
        for (size_t m = 0; m < index->M; m++) {
            const uint8_t byte = p.block[(m >> 1) * bbs + p.base + ((m & 1) ? 16 : 0)];
            const uint8_t c = p.high ? byte >> 4 : byte & 15;
            // ProductQuantizer::decode copies the centroid, sa_decode adds the coarse one
            const float* sub = pq->get_centroids(m, c);
            float* xm = x + m * dsub;
            if (coarse != nullptr) {
                const float* cm = coarse + m * dsub;
                for (size_t t = 0; t < dsub; t++) {
                    xm[t] = sub[t] + cm[t];
                }
            } else {
                std::memcpy(xm, sub, sizeof(float) * dsub);
            }
        }
    }
};

} // namespace

// Writes the stored vectors of the `n` ids (each in 0..ntotal, checked by the caller) to `out`
// (`n * d` floats, row-major). 0 on success, else 1 with FAISS's message in `message`.
extern "C" int lwdec_reconstruct_batch(
        const void* index_ptr,
        size_t n,
        const int64_t* ids,
        float* out,
        char* message,
        size_t capacity) {
    return guarded(message, capacity, [&]() -> int {
        const auto* index = static_cast<const faiss::Index*>(index_ptr);
        const FastScan fs(index);
        if (!fs.applies()) {
            for (size_t i = 0; i < n; i++) {
                index->reconstruct(ids[i], out + i * index->d);
            }
            return 0;
        }
        std::vector<faiss::idx_t> los(n);
        for (size_t i = 0; i < n; i++) {
            los[i] = fs.index->direct_map.get(ids[i]);
        }
        std::vector<float> scratch(fs.d);
        // a batch of search results lies all over the index, and each vector's codes over
        // its block: the codes and coarse centroid are fetched a few vectors ahead
        constexpr size_t ahead = 4;
        auto locate = [&](size_t i) {
            const int64_t list_no = faiss::lo_listno(los[i]);
            faiss::InvertedLists::ScopedCodes codes(fs.index->invlists, list_no);
            return fs.place(codes.get(), faiss::lo_offset(los[i]));
        };
        for (size_t i = 0; i < std::min(ahead, n); i++) {
            fs.prefetch(locate(i), faiss::lo_listno(los[i]));
        }
        for (size_t i = 0; i < n; i++) {
            if (i + ahead < n) {
                fs.prefetch(locate(i + ahead), faiss::lo_listno(los[i + ahead]));
            }
            const int64_t list_no = faiss::lo_listno(los[i]);
            faiss::InvertedLists::ScopedCodes codes(fs.index->invlists, list_no);
            const auto p = fs.place(codes.get(), faiss::lo_offset(los[i]));
            fs.decode(p, fs.coarse(list_no, scratch.data()), out + i * fs.d);
        }
        return 0;
    });
}

// The number of inverted lists when `lwdec_reconstruct_list` applies to this index (an IVF
// fast-scan index with 4-bit codes), else 0.
extern "C" int64_t lwdec_reconstruct_lists(const void* index_ptr) {
    const FastScan fs(static_cast<const faiss::Index*>(index_ptr));
    return fs.applies() ? fs.index->nlist : 0;
}

// Writes the ids and stored vectors of the vectors of list `list_no` from offset `start`
// (at most `capacity_rows` of them) to `ids` and `out` (row-major), and their number to
// `*rows`; 0 on success, else 1 with FAISS's message in `message`.
extern "C" int lwdec_reconstruct_list(
        const void* index_ptr,
        int64_t list_no,
        size_t start,
        size_t capacity_rows,
        int64_t* ids,
        float* out,
        size_t* rows,
        char* message,
        size_t capacity) {
    return guarded(message, capacity, [&]() -> int {
        *rows = 0;
        const FastScan fs(static_cast<const faiss::Index*>(index_ptr));
        if (!fs.applies() || list_no < 0 || size_t(list_no) >= fs.index->nlist) {
            write_message(message, capacity, "not a 4-bit fast-scan index, or no such list");
            return 1;
        }
        const size_t size = fs.index->invlists->list_size(list_no);
        const size_t count = start < size ? std::min(capacity_rows, size - start) : 0;
        faiss::InvertedLists::ScopedCodes codes(fs.index->invlists, list_no);
        faiss::InvertedLists::ScopedIds list_ids(fs.index->invlists, list_no);
        std::vector<float> scratch(fs.d);
        const float* coarse = fs.coarse(list_no, scratch.data());
        for (size_t i = 0; i < count; i++) {
            ids[i] = list_ids.get()[start + i];
            fs.decode(fs.place(codes.get(), start + i), coarse, out + i * fs.d);
        }
        *rows = count;
        return 0;
    });
}
