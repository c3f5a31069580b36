import sys, glob, time, torch, torch.nn.functional as F, numpy as np
sys.path.insert(0, '/work/main')
from dif.artificial.weights import load_model, DEFAULT_ENCODER, DEFAULT_DECODER
from dif.artificial.bits import random_bits, decode_bits
from dif.data import load_image
from dif.robustness import get_perturbation, png
torch.set_num_threads(1)
enc = load_model(DEFAULT_ENCODER, "encoder"); dec = load_model(DEFAULT_DECODER, "decoder")
R, n = enc.resolution, enc.fingerprint_length
def small(img): return F.interpolate(img[None], size=(R, R), mode="bilinear", align_corners=False, antialias=True)[0].clamp(0,1)
def embed(img, bits, s):
    x = small(img)
    with torch.no_grad(): y = enc(bits[None], x[None])[0]
    r = y - x
    H, W = img.shape[-2:]
    up = F.interpolate(r[None], size=(H, W), mode=sys.argv[3] if len(sys.argv)>3 else "bicubic", align_corners=False)[0]
    return ((img + s*up).clamp(0,1)*255).round()/255
def read(img):
    with torch.no_grad(): return decode_bits(dec(small(img)[None]))[0]
s = float(sys.argv[2])
P = ["none", "jpeg90", "jpeg75", "resize0.5", "blur1", "crop0.894"]
for d in sys.argv[1].split(","):
    fs = sorted(glob.glob(f'/work/shared/data/{d}/*'))[:30]
    g = torch.Generator().manual_seed(0)
    acc = {p: [] for p in P}; ps = []
    for f in fs:
        img = load_image(f); b = random_bits(1, n, g)[0]
        y = embed(img, b, s)
        ps.append(10*np.log10(1/float(((y-img)**2).mean())))
        for p in P:
            acc[p].append(float((read(get_perturbation(p)(y)) == b).float().mean()))
    print(d, len(fs), f"PSNR {np.mean(ps):.2f}", " ".join(f"{p}:{np.mean(v):.3f}" for p, v in acc.items()), flush=True)
