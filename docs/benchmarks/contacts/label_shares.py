import numpy as np
from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.body.skeleton import CONTACT_JOINTS, CONTACT_HEIGHT_M
M="/work/shared/data/mocap/"
files=["train/dataset-1_walk_normal_001.bvh.gz","train/dataset-1_run_normal_001.bvh.gz","train/dataset-1_dash_normal_001.bvh.gz","train/dataset-1_kick_normal_001.bvh.gz","extra2/cmu_08_01.bvh.gz","extra2/cmu_07_03.bvh.gz","extra2/cmu_08_05.bvh.gz","extra/cmu_03_01.bvh.gz","extra2/cmu_05_01.bvh.gz","extra2/cmu_06_01.bvh.gz"]
import os
for f in files:
    if not os.path.exists(M+f): print('missing',f); continue
    c=with_joints_and_contacts(read_motion(M+f)); j=c.joints[:, list(CONTACT_JOINTS)]
    sp=np.linalg.norm(np.diff(j,axis=0),axis=-1); sp=np.r_[sp[:1],sp]
    r=np.linalg.norm(np.diff(c.joints[:,0,:2],axis=0),axis=-1); r=np.r_[r[:1],r]
    low=j[...,2]<CONTACT_HEIGHT_M
    out=[]
    for ratio in (0,0.2,0.3,0.4):
        thr=np.maximum(0.005, ratio*r)[:,None]
        lab=(sp<thr)&low
        foot=np.stack([lab[:,[3,5]].any(1),lab[:,[4,6]].any(1)],1)
        out.append(f"{ratio}: {foot.mean():.2f} both {foot.all(1).mean():.2f} none {(~foot.any(1)).mean():.2f} slide {sp[:, [3,5,4,6]][lab[:, [3,5,4,6]]].mean()*100 if lab[:, [3,5,4,6]].any() else 0:.2f}")
    print(f.split('/')[-1][:26], f"root {r.mean()*100:.1f} cm/f", ' | '.join(out))
