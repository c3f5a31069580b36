import torch, glob, numpy as np, sys
from dif.artificial.weights import load_model, DEFAULT_PAIR
from dif.artificial.frame import embed_frame, read_frame
from dif.artificial.bits import random_bits
from dif.data import load_image
from dif.robustness import get_perturbation
torch.set_num_threads(1)
pair = sys.argv[1] if len(sys.argv) > 1 else str(DEFAULT_PAIR)
enc=load_model(pair+"/encoder.pth","encoder"); dec=load_model(pair+"/decoder.pth","decoder")
g=torch.Generator().manual_seed(0); res={}
files = sorted(glob.glob('/work/shared/data/cnndetection/crn/0_real/*'))[:4]+sorted(glob.glob('/work/shared/data/natural/live1/*'))[:4]+sorted(glob.glob('/work/shared/data/natural/bsd68/*'))[:3]
for f in files:
    x=load_image(f)[None]; b=random_bits(1,100,g)
    with torch.no_grad():
        y=(embed_frame(enc,b,x,38.5)*255).round()/255
        for name in ("clean-photo", "fp", "jpeg75", "resize0.5", "crop0.894", "blur1"):
            z = x if name == "clean-photo" else y if name == "fp" else get_perturbation(name)(y[0])[None]
            L, fr = read_frame(dec, z)
            res.setdefault(name, []).append(float(((L[0]>0).float()==b[0]).float().mean()))
for k, v in res.items(): print(k, f"{np.mean(v):.3f}", [round(a,2) for a in v])
