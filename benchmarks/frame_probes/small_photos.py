import torch, glob, numpy as np, torch.nn.functional as F
import dif.artificial.frame as fr
from dif.artificial.weights import load_model, DEFAULT_PAIR
from dif.artificial.bits import random_bits
from dif.data import load_image
torch.set_num_threads(1)
enc=load_model(DEFAULT_PAIR/"encoder.pth","encoder"); dec=load_model(DEFAULT_PAIR/"decoder.pth","decoder")
for gfix in (1, 2):
  fr.grid_for = lambda h, w, res, gfix=gfix: gfix
  for size in ((64,64),(100,150),(128,128)):
    g=torch.Generator().manual_seed(0); accs=[]
    for f in sorted(glob.glob('/work/shared/data/natural/live1/*'))[:8]:
        x=F.interpolate(load_image(f)[None], size=size, mode="bilinear", antialias=True)
        b=random_bits(1,100,g)
        with torch.no_grad():
            y=(fr.embed_frame(enc,b,x,38.5)*255).round()/255
            L=fr.frame_logits(dec,y,1.0,gfix)[0]
        accs.append(float(((L>0).float()==b[0]).float().mean()))
    print(gfix, size, np.mean(accs))
