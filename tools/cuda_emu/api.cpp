// C entry points for check.py (ctypes): thin wrappers over the launchers in cuda/*.h, one per dtype.
#include "emu.h"
#include "conv2d.h"
#include "pool.h"
#include "batch_norm.h"
#include "lstm.h"
#include "softmax_xent.h"
#include "gemm.h"
using namespace fastnn::cuda;
static Conv2dShape cs(const int64_t* s) { return {s[0],s[1],s[2],s[3],s[4],s[5],s[6],s[7],s[8],s[9],s[10],s[11],s[12]}; }
static Pool2dShape ps(const int64_t* s) { return {s[0],s[1],s[2],s[3],s[4],s[5],s[6],s[7],s[8],s[9],s[10],s[11]}; }
#define API(T, SUF) \
extern "C" void conv_fwd_##SUF(const T* x, const T* w, const T* b, T* out, const int64_t* s) { conv2d_forward<T>(x, w, b, out, cs(s), 0); } \
extern "C" void conv_bwd_data_##SUF(const T* dout, const T* w, T* dx, const int64_t* s) { conv2d_backward_data<T>(dout, w, dx, cs(s), 0); } \
extern "C" void conv_bwd_w_##SUF(const T* dout, const T* x, T* dw, T* db, T* part, const int64_t* s) { conv2d_backward_weight<T>(dout, x, dw, db, part, cs(s), 0); } \
extern "C" void maxf_##SUF(const T* x, T* out, int32_t* am, const int64_t* s) { max_pool2d_forward<T>(x, out, am, ps(s), 0); } \
extern "C" void maxb_##SUF(const T* d, const int32_t* am, T* dx, const int64_t* s) { max_pool2d_backward<T>(d, am, dx, ps(s), 0); } \
extern "C" void avgf_##SUF(const T* x, T* out, const int64_t* s) { avg_pool2d_forward<T>(x, out, ps(s), 0); } \
extern "C" void avgb_##SUF(const T* d, T* dx, const int64_t* s) { avg_pool2d_backward<T>(d, dx, ps(s), 0); } \
extern "C" void bn_train_##SUF(const T* x, const T* g, const T* b, T* y, T* sm, T* si, T* rm, T* rv, double* p, double mom, double eps, int64_t n, int64_t c, int64_t l) { batch_norm_forward_training<T>(x, g, b, y, sm, si, rm, rv, p, mom, eps, {n, c, l}, 0); } \
extern "C" void bn_eval_##SUF(const T* x, const T* g, const T* b, const T* m, const T* is, T* y, int64_t n, int64_t c, int64_t l) { batch_norm_forward_eval<T>(x, g, b, m, is, y, {n, c, l}, 0); } \
extern "C" void bn_bwd_##SUF(const T* d, const T* x, const T* g, const T* m, const T* is, T* dx, T* dg, T* db, double* p, int tr, int64_t n, int64_t c, int64_t l) { batch_norm_backward<T>(d, x, g, m, is, dx, dg, db, p, tr != 0, {n, c, l}, 0); } \
extern "C" void lstm_fwd_##SUF(T* gates, const T* b, const T* cp, T* c, T* h, T* tc, int64_t n, int64_t hd) { lstm_cell_forward<T>(gates, b, cp, c, h, tc, n, hd, 0); } \
extern "C" void lstm_bwd_##SUF(const T* a, const T* cp, const T* tc, const T* dh, const T* dc, T* dg, T* dcp, int64_t n, int64_t hd) { lstm_cell_backward<T>(a, cp, tc, dh, dc, dg, dcp, n, hd, 0); } \
extern "C" void sx_fwd_##SUF(const T* s, const int64_t* y, T* lse, double* rl, T* loss, int64_t r, int64_t c) { softmax_xent_forward<T>(s, y, lse, rl, loss, r, c, 0); } \
extern "C" void sx_bwd_##SUF(const T* s, const int64_t* y, const T* lse, const T* dp, double dv, T* ds, int64_t r, int64_t c) { softmax_xent_backward<T>(s, y, lse, dp, dv, ds, r, c, 0); } \
extern "C" void gemm_##SUF(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, int ta, int tb, int acc) { gemm<T>(a, b, c, m, n, k, ta != 0, tb != 0, acc != 0, 0); }
API(double, f64)
API(float, f32)
extern "C" int64_t bn_chunks(int64_t n, int64_t c, int64_t l) { return batch_norm_chunks({n, c, l}); }
extern "C" int64_t conv_splits(const int64_t* s) { return conv2d_backward_weight_splits(cs(s)); }
extern "C" int64_t conv_scratch(const int64_t* s) { return conv2d_backward_weight_scratch(cs(s)); }
