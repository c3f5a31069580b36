import sys, glob, torch, torch.nn.functional as F, numpy as np
sys.path.insert(0, '/work/main')
from dif.artificial.weights import load_model, DEFAULT_ENCODER, DEFAULT_DECODER
from dif.artificial.bits import random_bits, decode_bits
from dif.data import load_image
from dif.robustness import get_perturbation
torch.set_num_threads(1)
enc = load_model(DEFAULT_ENCODER, "encoder"); dec = load_model(DEFAULT_DECODER, "decoder")
R, n = 64, 100
T = int(sys.argv[2]); PS = float(sys.argv[3])
def thumb(x, s): return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
def tiles(t):  # 1x3xS xS -> k x 3 x R x R
    k = t.shape[-1] // R
    return t.unfold(2, R, R).unfold(3, R, R).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, R, R), k
def untile(r, k):
    return r.reshape(1, k, k, 3, R, R).permute(0, 3, 1, 4, 2, 5).reshape(1, 3, k*R, k*R)
def embed(img, b):
    t = thumb(img[None], T); tt, k = tiles(t)
    with torch.no_grad(): r = enc(b.expand(len(tt), n), tt) - tt
    r = untile(r, k)
    up = F.interpolate(r, size=img.shape[-2:], mode="bicubic", align_corners=False)[0]
    up = up * (10**(-PS/20) / up.pow(2).mean().sqrt())
    return ((img + up).clamp(0,1)*255).round()/255
def read(img):
    tt, k = tiles(thumb(img[None], T))
    with torch.no_grad(): return (dec(tt).sum(0) > 0).float()
P = ["none", "jpeg90", "jpeg75", "resize0.5", "blur1", "crop0.894"]
for d in sys.argv[1].split(","):
    fs = sorted(glob.glob(f'/work/shared/data/{d}/*'))[:30]
    g = torch.Generator().manual_seed(0)
    acc = {p: [] for p in P}
    for f in fs:
        img = load_image(f); b = random_bits(1, n, g)[0]
        y = embed(img, b)
        for p in P: acc[p].append(float((read(get_perturbation(p)(y)) == b).float().mean()))
    print(d, T, PS, " ".join(f"{p}:{np.mean(v):.3f}" for p, v in acc.items()), flush=True)
