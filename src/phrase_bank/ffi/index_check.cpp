// Reads a bank's index with sizes bounded by the file (`lwdec_read_index`), and compares an
// index read from a bank with an empty one built from the manifest's factory
// string, so that a manifest can only describe the index it sits beside: same class, metric,
// dimension, and for IVF and PQ kinds the same lists, quantizer and code layout. A read index
// whose quantizer or inverted lists disagree with its own list count is refused too (a search
// would index out of bounds). Called before any search.
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cxxabi.h>
#include <cstdlib>
#include <string>
#include <typeinfo>

#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

namespace {

std::string class_name(const faiss::Index& index) {
    const char* mangled = typeid(index).name();
    int status = 0;
    char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string name = status == 0 && demangled != nullptr ? demangled : mangled;
    std::free(demangled);
    return name;
}

int say(char* out, size_t cap, const char* fmt, ...) {
    if (cap > 0) {
        va_list args;
        va_start(args, fmt);
        std::vsnprintf(out, cap, fmt, args);
        va_end(args);
    }
    return 1;
}

// The class, with the flat subclasses that differ only by a metric they also store (FAISS
// reads an inner-product Flat as IndexFlatIP, the factory builds an IndexFlat) as one.
std::string kind(const faiss::Index& index) {
    if (dynamic_cast<const faiss::IndexFlat*>(&index) != nullptr &&
        (typeid(index) == typeid(faiss::IndexFlatIP) ||
         typeid(index) == typeid(faiss::IndexFlatL2) || typeid(index) == typeid(faiss::IndexFlat))) {
        return "faiss::IndexFlat";
    }
    return class_name(index);
}

// Whether two product quantizers differ in sub-quantizers or bits (then says how).
bool pq_differs(const faiss::ProductQuantizer& a, const faiss::ProductQuantizer& b, char* out,
                size_t cap) {
    if (a.M == b.M && a.nbits == b.nbits) {
        return false;
    }
    say(out, cap, "PQ%zux%zu, expected PQ%zux%zu", a.M, a.nbits, b.M, b.nbits);
    return true;
}

}  // namespace

extern "C" int lwdec_index_mismatch(const void* index_p, const void* reference_p, char* out,
                                    size_t cap) {
    try {
        const auto* a = static_cast<const faiss::Index*>(index_p);
        const auto* b = static_cast<const faiss::Index*>(reference_p);
        if (a->metric_type != b->metric_type) {
            return say(out, cap, "metric %d, expected %d (inner product)", (int)a->metric_type,
                       (int)b->metric_type);
        }
        if (a->d != b->d) {
            return say(out, cap, "dimension %lld, expected %lld", (long long)a->d,
                       (long long)b->d);
        }
        if (kind(*a) != kind(*b)) {
            return say(out, cap, "the file holds a %s, the spec builds a %s",
                       class_name(*a).c_str(), class_name(*b).c_str());
        }
        if (a->ntotal < 0) {
            return say(out, cap, "negative vector count %lld", (long long)a->ntotal);
        }
        const auto* fa = dynamic_cast<const faiss::IndexFlatCodes*>(a);
        const auto* fb = dynamic_cast<const faiss::IndexFlatCodes*>(b);
        if (fa != nullptr && fb != nullptr) {
            if (fa->code_size != fb->code_size) {
                return say(out, cap, "codes of %zu bytes, expected %zu", fa->code_size,
                           fb->code_size);
            }
            if (fa->codes.size() != fa->code_size * (size_t)fa->ntotal) {
                return say(out, cap, "%zu bytes of codes for %lld vectors", fa->codes.size(),
                           (long long)fa->ntotal);
            }
        }
        const auto* pa = dynamic_cast<const faiss::IndexPQ*>(a);
        const auto* pb = dynamic_cast<const faiss::IndexPQ*>(b);
        if (pa != nullptr && pb != nullptr && pq_differs(pa->pq, pb->pq, out, cap)) {
            return 1;
        }
        const auto* ia = dynamic_cast<const faiss::IndexIVF*>(a);
        const auto* ib = dynamic_cast<const faiss::IndexIVF*>(b);
        if (ia == nullptr || ib == nullptr) {
            return 0;
        }
        if (ia->nlist != ib->nlist) {
            return say(out, cap, "%zu inverted lists, expected %zu", ia->nlist, ib->nlist);
        }
        if (ia->code_size != ib->code_size) {
            return say(out, cap, "codes of %zu bytes, expected %zu", ia->code_size,
                       ib->code_size);
        }
        if (ia->quantizer == nullptr || ib->quantizer == nullptr) {
            return say(out, cap, "no coarse quantizer");
        }
        const faiss::Index& qa = *ia->quantizer;
        const faiss::Index& qb = *ib->quantizer;
        if (kind(qa) != kind(qb) || qa.d != qb.d || qa.metric_type != qb.metric_type) {
            return say(out, cap, "a coarse quantizer %s (dimension %lld, metric %d), expected %s "
                       "(dimension %lld, metric %d)", class_name(qa).c_str(), (long long)qa.d,
                       (int)qa.metric_type, class_name(qb).c_str(), (long long)qb.d,
                       (int)qb.metric_type);
        }
        if (ia->is_trained && qa.ntotal != (faiss::idx_t)ia->nlist) {
            return say(out, cap, "a coarse quantizer of %lld centroids for %zu lists",
                       (long long)qa.ntotal, ia->nlist);
        }
        if (ia->invlists == nullptr || ia->invlists->nlist != ia->nlist ||
            (ia->invlists->code_size != ia->code_size &&
             ia->invlists->code_size != faiss::InvertedLists::INVALID_CODE_SIZE)) {
            return say(out, cap, "inverted lists that do not match the index's %zu lists",
                       ia->nlist);
        }
        size_t stored = 0;
        for (size_t list = 0; list < ia->nlist; list++) {
            stored += ia->invlists->list_size(list);
        }
        if (stored != (size_t)ia->ntotal) {
            return say(out, cap, "%zu vectors in the inverted lists, %lld in the header", stored,
                       (long long)ia->ntotal);
        }
        const auto* qpa = dynamic_cast<const faiss::IndexIVFPQ*>(a);
        const auto* qpb = dynamic_cast<const faiss::IndexIVFPQ*>(b);
        if (qpa != nullptr && qpb != nullptr && pq_differs(qpa->pq, qpb->pq, out, cap)) {
            return 1;
        }
        const auto* sa = dynamic_cast<const faiss::IndexIVFFastScan*>(a);
        const auto* sb = dynamic_cast<const faiss::IndexIVFFastScan*>(b);
        if (sa != nullptr && sb != nullptr &&
            (sa->M != sb->M || sa->nbits != sb->nbits || sa->bbs != sb->bbs ||
             sa->M2 != sb->M2)) {
            return say(out, cap, "fast-scan PQ%zux%zu (block %d), expected PQ%zux%zu (block %d)",
                       sa->M, sa->nbits, sa->bbs, sb->M, sb->nbits, sb->bbs);
        }
        return 0;
    } catch (const std::exception& e) {
        return say(out, cap, "cannot compare: %s", e.what());
    } catch (...) {
        return say(out, cap, "cannot compare");
    }
}

// Reads an index file through a reader that knows how many bytes remain, so that a forged
// size field cannot make FAISS allocate what the file does not hold: FAISS sizes a vector by
// the 8-byte count it reads first (up to 2^40 items), and an inverted file sizes all its lists
// from a table before reading any. So a single 8-byte value (a count, nlist, ntotal, d) above
// 2^20 (the header's fixed dummy value) must fit in the bytes that remain, and the list sizes
// that follow the tag "full" or "sprs" must sum to no more than them (each entry takes an
// 8-byte id). Legitimate files never come near either bound.
namespace {

uint32_t tag(const char* s) {
    return (uint32_t)(uint8_t)s[0] | (uint32_t)(uint8_t)s[1] << 8 |
           (uint32_t)(uint8_t)s[2] << 16 | (uint32_t)(uint8_t)s[3] << 24;
}

struct BoundedReader : faiss::IOReader {
    FILE* file = nullptr;
    uint64_t remaining = 0;
    // 0: nothing expected; 1/2: the sizes' count, then the sizes of a "full"/"sprs" table
    int expect = 0;
    bool sparse = false;

    [[noreturn]] void refuse(const std::string& what) {
        throw faiss::FaissException(what + " where " + std::to_string(remaining) +
                                    " bytes remain");
    }

    size_t operator()(void* ptr, size_t size, size_t nitems) override {
        size_t got = std::fread(ptr, size, nitems, file);
        uint64_t bytes = (uint64_t)got * size;
        remaining = bytes > remaining ? 0 : remaining - bytes;
        int expected = expect;
        expect = 0;
        if (size == 4 && got == 1) {
            uint32_t v = *static_cast<const uint32_t*>(ptr);
            if (v == tag("full") || v == tag("sprs")) {
                expect = 1;
                sparse = v == tag("sprs");
            }
        } else if (size == 8 && got == 1) {
            uint64_t v = *static_cast<const uint64_t*>(ptr);
            const uint64_t dummy = uint64_t{1} << 20, huge = uint64_t{1} << 40;
            if (v > dummy && v < huge && v > remaining) {
                refuse("the index claims a size of " + std::to_string(v));
            }
            if (expected == 1) {
                expect = 2;
            } else if (expected == 2 && !sparse && v > remaining) {
                refuse("the inverted lists claim " + std::to_string(v) + " vectors");
            }
        } else if (size == 8 && got > 1 && expected == 2) {
            const auto* values = static_cast<const uint64_t*>(ptr);
            uint64_t sum = 0;
            for (size_t i = sparse ? 1 : 0; i < got; i += sparse ? 2 : 1) {
                sum += values[i];
                if (sum > remaining) {
                    refuse("the inverted lists claim " + std::to_string(sum) + "+ vectors");
                }
            }
        }
        return got;
    }
};

}  // namespace

extern "C" int lwdec_read_index(const char* path, void** out, char* message, size_t cap) {
    *out = nullptr;
    FILE* file = std::fopen(path, "rb");
    if (file == nullptr) {
        return say(message, cap, "cannot open: %s", std::strerror(errno));
    }
    int status = 0;
    try {
        BoundedReader reader;
        reader.name = path;
        reader.file = file;
        if (std::fseek(file, 0, SEEK_END) != 0) {
            throw faiss::FaissException("cannot seek");
        }
        long length = std::ftell(file);
        std::rewind(file);
        reader.remaining = length < 0 ? 0 : (uint64_t)length;
        *out = faiss::read_index(&reader, 0);
        if (*out == nullptr) {
            status = say(message, cap, "the file holds no index");
        }
    } catch (const std::exception& e) {
        status = say(message, cap, "%s", e.what());
    } catch (...) {
        status = say(message, cap, "unknown error");
    }
    std::fclose(file);
    return status;
}
